"""Build a table sweep as namespaced Kedro pipelines from the existing stages.

Per training set (namespace ``plain`` / ``aug``): the teacher (experts shared by every cell
on it) and the Full baseline. Per cell (namespace = the cell's name, e.g. ``stm_ipc1_real_plain``):
distill and evaluation. Then one table node (namespace = the table's name). Wiring only.
"""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node, pipeline

from galaxy_distillation.pipelines._sweep_nodes import (
    distill_cell,
    evaluate_cell,
    full_baseline,
    sweep_table,
    train_missing_experts,
)
from galaxy_distillation.sweep import cells, groups


def _bind(func, **kwargs):
    return update_wrapper(partial(func, **kwargs), func)


def _namespaced(nodes: list, namespace: str, inputs: set[str] | dict[str, str]) -> Pipeline:
    """``nodes`` in ``namespace``: datasets prefixed, parameters and ``inputs`` shared."""
    params = {name for n in nodes for name in n.inputs if name.startswith("params:")}
    return pipeline(nodes, namespace=namespace, parameters=params, inputs=inputs)


def create_sweep_pipeline(table: str, after: str | None = None) -> Pipeline:
    """The sweep of ``table`` (see :mod:`galaxy_distillation.sweep`); ``after`` is a dataset the
    training-set nodes wait for (``curation_report`` when curation runs in the same pipeline)."""
    wait = [after] if after else []
    parts: list[Pipeline] = []
    flags = groups(table)
    for flag in flags:
        parts.append(_namespaced(
            [
                node(train_missing_experts, ["model_input", "experts_existing", "params:teacher", "params:model",
                                             "params:device", "params:progress", *wait],
                     "expert_trajectories", name="teacher"),
                node(full_baseline, ["model_input", "full_previous", "params:evaluation", "params:teacher",
                                     "params:model", "params:device", "params:progress", *wait],
                     "full_baseline", name="full_baseline"),
            ],
            flag, set(wait),
        ))
    for cell in cells(table):
        parts.append(_namespaced(
            [
                node(_bind(distill_cell, table=table, cell=cell),
                     ["model_input", "expert_trajectories", "distilled_previous", "history_previous",
                      "params:distill", "params:teacher", "params:evaluation", "params:model", "params:dataset",
                      "params:sweep", "params:device", "params:progress"],
                     ["distilled_set", "distill_history"], name="distill"),
                node(_bind(evaluate_cell, table=table, cell=cell),
                     ["model_input", "distilled_set", "evaluation_previous", "full_baseline", "params:evaluation",
                      "params:teacher", "params:model", "params:dataset", "params:sweep", "params:device",
                      "params:progress"],
                     "evaluation_results", name="evaluate"),
            ],
            cell.name,
            {"model_input": f"{cell.flag}.model_input",
                    "expert_trajectories": f"{cell.flag}.expert_trajectories",
                    "full_baseline": f"{cell.flag}.full_baseline"},
        ))
    results = [f"{flag}.full_baseline" for flag in flags] + [f"{c.name}.evaluation_results" for c in cells(table)]
    parts.append(_namespaced(
        [node(_bind(sweep_table, table=table, flags=flags),
              ["params:dataset", "params:evaluation", "params:distill", *results],
              ["results_markdown", "results_csv"], name="results_table")],
        table, set(results),
    ))
    return sum(parts, Pipeline([]))
