"""The ``insight`` pipeline: each prototype measured against the real galaxies of its class, the
paper's claims tested (``data/08_reporting/insight_<variant>/``; docs/method.md, "Insight")."""

from collections.abc import Sequence

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import insight_report, insight_results, measure_prototypes, measure_real_galaxies, wait_for


def create_pipeline(after: Sequence[str] = (), **kwargs) -> Pipeline:
    """``after``: datasets to wait for when earlier stages run in the same pipeline (``__default__``:
    the curated files exist only once curation has written them; the report comes after reporting)."""
    real = "insight_real_input"
    waiting = []
    if after:
        real = "insight_real_loaded"
        waiting = [node(wait_for, ["insight_real_input", *after], real, name="insight_after_reporting")]
    return pipeline(
        [
            *waiting,
            node(measure_real_galaxies, [real, "insight_real_previous", "params:insight"],
                 "insight_real_diagnostics", name="measure_real_galaxies"),
            node(measure_prototypes, ["distilled_set", "data_transform", "insight_real_diagnostics", "params:insight"],
                 "insight_prototypes", name="measure_prototypes"),
            node(insight_results,
                 ["insight_prototypes", "insight_real_diagnostics", real, "all_insight_summaries",
                  "params:insight", "params:variant", "params:dataset", "params:method", "params:ipc", "params:init",
                  "params:augmented"],
                 ["insight_tables", "insight_metrics"], name="insight_results"),
            node(insight_report, ["insight_tables", "insight_prototypes", "insight_real_diagnostics", real,
                                  "params:insight"], "insight_report", name="insight_report"),
        ]
    )
