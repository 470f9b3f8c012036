"""The ``teacher`` pipeline: expert trajectories on the model input."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import summarise_experts, train_experts


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(train_experts, ["model_input", "params:teacher", "params:model", "params:device", "params:progress",
                                 "expert_inventory", "params:compute"],
                 "expert_trajectories", name="train_experts"),
            node(summarise_experts, "expert_trajectories", ["teacher_summary", "teacher_metrics"],
                 name="summarise_experts"),
        ]
    )
