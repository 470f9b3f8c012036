"""The ``distill`` pipeline: STM or MTT on the stored expert trajectories."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import distill_dataset


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                distill_dataset,
                ["model_input", "expert_trajectories", "params:distill", "params:teacher", "params:evaluation",
                 "params:model", "params:method", "params:ipc", "params:init", "params:variant", "params:device",
                 "params:progress"],
                ["distilled_set", "distill_history", "distill_metrics"],
                name="distill_dataset",
            ),
        ]
    )
