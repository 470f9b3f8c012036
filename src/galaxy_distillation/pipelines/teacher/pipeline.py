"""The ``teacher`` pipeline: expert trajectories and the Full-set baseline, once per (dataset, augmented)."""

from kedro.pipeline import Pipeline, node, pipeline

from galaxy_distillation.pipelines import prepare

from .nodes import evaluate_full_set, summarise_experts, train_experts


def create_pipeline(**kwargs) -> Pipeline:
    return prepare.create_pipeline() + pipeline(
        [
            node(train_experts, ["prepared_data", "params:teacher", "params:model", "params:device", "params:progress",
                                 "expert_inventory", "params:compute"],
                 "expert_trajectories", name="train_experts"),
            node(summarise_experts, ["expert_trajectories", "prepared_data", "params:teacher", "params:model"],
                 ["teacher_summary", "teacher_metrics"],
                 name="summarise_experts"),
            node(evaluate_full_set, ["prepared_data", "params:evaluation", "params:model", "params:device",
                                     "params:progress"], "full_baseline", name="evaluate_full_set"),
        ]
    )
