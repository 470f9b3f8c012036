"""The ``evaluation`` pipeline: distilled vs random real (vs the Full-set baseline of ``teacher``)."""

from kedro.pipeline import Pipeline, node, pipeline

from galaxy_distillation.pipelines import prepare

from .nodes import collect_evaluation, evaluate_cross_arch, evaluate_distilled, evaluate_random, evaluate_random_quick

_RUN = ["params:device", "params:progress"]


def create_pipeline(**kwargs) -> Pipeline:
    return prepare.create_pipeline() + pipeline(
        [
            node(evaluate_distilled, ["prepared_data", "distilled_set", "params:evaluation", "params:model", *_RUN],
                 "distilled_evaluation", name="evaluate_distilled"),
            node(evaluate_random,
                 ["prepared_data", "distilled_set", "params:evaluation", "params:model", "params:ipc", *_RUN],
                 "random_evaluation", name="evaluate_random"),
            node(evaluate_random_quick,
                 ["prepared_data", "distilled_set", "params:evaluation", "params:model", "params:ipc", *_RUN],
                 "random_quick_evaluation", name="evaluate_random_quick"),
            node(evaluate_cross_arch, ["prepared_data", "distilled_set", "params:evaluation", "params:model", *_RUN],
                 "cross_arch_evaluation", name="evaluate_cross_arch"),
            node(collect_evaluation,
                 ["distilled_evaluation", "random_evaluation", "full_baseline", "cross_arch_evaluation",
                  "distilled_set", "params:model", "params:dataset", "params:method", "params:ipc", "params:init",
                  "params:augmented", "params:variant", "params:data_label",
                  "random_quick_evaluation"],
                 ["evaluation_results", "evaluation_metrics"], name="collect_evaluation"),
        ]
    )
