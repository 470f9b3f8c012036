"""The ``reporting`` pipeline: grids, tables and curves (files and MLflow artifacts)."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import confusion_matrices, convergence_curves, distilled_grid, results_tables


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(distilled_grid, ["distilled_set", "data_transform", "params:reporting", "evaluation_results"],
                 "distilled_grid", name="distilled_grid"),
            node(confusion_matrices, "evaluation_results", "confusion_figure", name="confusion_matrices"),
            node(convergence_curves, ["distill_history", "distilled_set", "evaluation_results"], "distill_curves",
                 name="convergence_curves"),
            node(results_tables, ["all_evaluation_results", "evaluation_results"],
                 ["results_table_markdown", "results_table_csv"], name="results_tables"),
        ]
    )
