"""The ``insight`` pipeline: each prototype measured against the real galaxies of its class, the
paper's claims tested (``data/08_reporting/insight_<variant>/``; docs/method.md, "Insight")."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import insight_report, insight_results, measure_prototypes, measure_real_galaxies


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(measure_real_galaxies, ["insight_real_input", "insight_real_previous", "params:insight"],
                 "insight_real_diagnostics", name="measure_real_galaxies"),
            node(measure_prototypes, ["distilled_set", "data_transform", "insight_real_diagnostics", "params:insight"],
                 "insight_prototypes", name="measure_prototypes"),
            node(insight_results,
                 ["insight_prototypes", "insight_real_diagnostics", "insight_real_input", "all_insight_summaries",
                  "params:insight", "params:variant", "params:dataset", "params:method", "params:ipc", "params:init",
                  "params:augmented"],
                 ["insight_tables", "insight_metrics"], name="insight_results"),
            node(insight_report, ["insight_tables", "insight_prototypes", "insight_real_diagnostics",
                                  "insight_real_input", "params:insight"], "insight_report", name="insight_report"),
        ]
    )
