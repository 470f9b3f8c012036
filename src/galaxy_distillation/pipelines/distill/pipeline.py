"""The ``distill`` pipeline: STM or MTT on the stored expert trajectories."""

from kedro.pipeline import Pipeline, node, pipeline

from galaxy_distillation.pipelines import prepare

from .nodes import distill_dataset


def create_pipeline(**kwargs) -> Pipeline:
    return prepare.create_pipeline() + pipeline(
        [
            node(
                distill_dataset,
                ["prepared_data", "expert_trajectories", "params:distill", "params:evaluation", "params:model",
                 "params:method", "params:ipc", "params:init", "params:variant", "params:device", "params:progress",
                 "params:dataset", "params:teacher"],
                ["distilled_set", "distill_history", "distill_metrics"],
                name="distill_dataset",
            ),
        ]
    )
