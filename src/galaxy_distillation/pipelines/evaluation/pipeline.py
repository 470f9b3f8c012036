"""The ``evaluation`` pipeline: distilled vs random real vs full training set."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import evaluate_variant


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                evaluate_variant,
                ["model_input", "distilled_set", "params:evaluation", "params:teacher", "params:model",
                 "params:dataset", "params:method", "params:ipc", "params:init", "params:augmented",
                 "params:variant", "params:device", "params:progress"],
                ["evaluation_results", "evaluation_metrics"],
                name="evaluate_variant",
            ),
        ]
    )
