"""The ``compare`` pipeline: MTT vs STM over seeds (paper Figure 2) and STM's lambda ablation
(Figure 3). Run it after ``teacher``: ``kedro run --pipelines=compare``."""

from kedro.pipeline import Pipeline, node, pipeline

from galaxy_distillation.pipelines import prepare

from .nodes import compare_methods, lambda_ablation, plot_comparison, plot_lambda, summarise_comparison

_INPUTS = ["prepared_data", "expert_trajectories", "params:compare", "params:distill", "params:evaluation",
           "params:model", "params:ipc", "params:device", "params:progress", "params:dataset",
           "params:compute", "params:teacher"]


def create_pipeline(**kwargs) -> Pipeline:
    return prepare.create_pipeline() + pipeline(
        [
            node(compare_methods, _INPUTS, "compare_curves", name="compare_methods"),
            node(lambda_ablation, _INPUTS, "lambda_curves", name="lambda_ablation"),
            node(plot_comparison, ["compare_curves", "params:compare"], "compare_figure", name="plot_comparison"),
            node(plot_lambda, ["lambda_curves", "params:compare"], "lambda_figure", name="plot_lambda"),
            node(summarise_comparison, ["compare_curves", "lambda_curves"], ["compare_summary", "compare_metrics"],
                 name="summarise_comparison"),
        ]
    )
