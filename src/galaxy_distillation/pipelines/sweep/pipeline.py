"""Build a table sweep as namespaced Kedro pipelines from the existing stages.

Per training set (namespace ``plain`` / ``aug``): prepare, the teacher (experts shared by every
cell on it) and the Full baseline. Per cell (namespace = the cell's name, e.g.
``stm_ipc1_real_plain``): distill and evaluation, given their cell as the parameter
``params:sweep_cells.<table>.<cell>``. Then one table node (namespace = the table's name),
given ``params:sweep_cells.<table>``. Wiring only. The cells depend only on their training set, so with ``compute.backend:
ray`` (and the ``ThreadRunner`` ``kedro run`` picks then) every cell's task is in flight at once.

Per shape group (:func:`~.cells.shape_groups`, Table 2 only: the cells of one IPC): one node
``<leader>.distill_batched`` (:mod:`.batched`, ``sweep.batched``) in the namespace of the group's
first cell, whose ``batched_distillations`` each of the group's ``distill`` nodes reads last.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from galaxy_distillation.pipelines import prepare
from galaxy_distillation.pipelines.sweep.batched import distill_batched
from galaxy_distillation.pipelines.sweep.cells import cells, groups, shape_groups
from galaxy_distillation.pipelines.sweep.nodes import (
    distill_cell,
    evaluate_cell,
    full_baseline,
    pass_on,
    results_table_node,
)
from galaxy_distillation.pipelines.teacher.nodes import train_experts

_RUN = ["params:device", "params:progress"]


def _namespaced(nodes: list | Pipeline, namespace: str, inputs: set[str] | dict[str, str],
                parameters: dict[str, str] | None = None) -> Pipeline:
    """``nodes`` in ``namespace``: datasets prefixed, parameters and ``inputs`` shared, the
    parameters in ``parameters`` renamed."""
    node_list = nodes.nodes if isinstance(nodes, Pipeline) else nodes
    params = {name: name for n in node_list for name in n.inputs if name.startswith("params:")}
    return pipeline(nodes, namespace=namespace, parameters={**params, **(parameters or {})}, inputs=inputs)


def create_sweep_pipeline(table: str, after: str | None = None) -> Pipeline:
    """The sweep of ``table`` (see :mod:`galaxy_distillation.pipelines.sweep.cells`); ``after`` is a dataset the
    training-set nodes wait for (``curation_report`` when curation runs in the same pipeline)."""
    wait = [after] if after else []
    parts: list[Pipeline] = []
    flags = groups(table)
    for flag in flags:
        prep = prepare.create_pipeline()
        if wait:  # the model input exists only once curation has written it
            prep = pipeline([node(pass_on, ["model_input_files", *wait], "model_input_loaded", name="after_curation")]
                            ) + pipeline(prep, inputs={"model_input": "model_input_loaded"})
        parts.append(_namespaced(
            list(prep.nodes) + [
                node(train_experts, ["prepared_data", "params:teacher", "params:model", *_RUN, "expert_inventory",
                                     "params:compute"], "expert_trajectories", name="teacher"),
                node(full_baseline, ["prepared_data", "full_previous", "params:evaluation", "params:teacher",
                                     "params:model", *_RUN, "params:compute"], "full_baseline", name="full_baseline"),
            ],
            flag, set(wait),
        ))
    leader = {}
    for group_name, group in shape_groups(table).items():
        first = group[0].name
        leader.update({c.name: first for c in group})
        reads = {f"{name}_{flag}": f"{flag}.{name}" for flag in dict.fromkeys(c.flag for c in group)
                 for name in ("prepared_data", "expert_trajectories")}
        reads |= {f"{name}_{c.name}": f"{c.name}.{name}" for c in group for name in ("distilled_previous",
                                                                                    "history_previous")}
        parts.append(_namespaced(
            [node(distill_batched,
                  ["params:group", "params:distill", "params:evaluation", "params:model", "params:dataset",
                   "params:sweep", *_RUN, "params:compute", "params:teacher", "params:data_root", "params:data_label",
                   *reads], "batched_distillations", name="distill_batched")],
            first, reads, {"params:group": f"params:sweep_groups.{table}.{group_name}"},
        ))
    for cell in cells(table):
        shared = {name: f"{cell.flag}.{name}" for name in ("prepared_data", "expert_trajectories", "full_baseline")}
        batched = []
        if cell.name in leader:  # its shape group's distillations (sweep.batched), read last
            batched = ["batched_distillations"]
            shared["batched_distillations"] = f"{leader[cell.name]}.batched_distillations"
        parts.append(_namespaced(
            [
                node(distill_cell,
                     ["prepared_data", "expert_trajectories", "distilled_previous", "history_previous",
                      "params:cell", "params:distill", "params:evaluation", "params:model", "params:dataset",
                      "params:sweep", *_RUN, "params:compute", "params:teacher", "params:data_root",
                      "params:data_label", *batched],
                     ["distilled_set", "distill_history"], name="distill"),
                node(evaluate_cell,
                     ["prepared_data", "distilled_set", "distill_history", "evaluation_previous", "full_baseline",
                      "params:cell", "params:evaluation", "params:model", "params:dataset", "params:sweep", *_RUN,
                      "params:compute", "params:data_root", "params:data_label"],
                     "evaluation_results", name="evaluate"),
            ],
            cell.name, shared, {"params:cell": f"params:sweep_cells.{table}.{cell.name}"},
        ))
    results = [f"{flag}.full_baseline" for flag in flags] + [f"{c.name}.evaluation_results" for c in cells(table)]
    parts.append(_namespaced(
        [node(results_table_node, ["params:cells", "params:dataset", "params:evaluation", "params:data_label",
                                   *results], ["results_markdown", "results_csv"], name="results_table")],
        table, set(results), {"params:cells": f"params:sweep_cells.{table}"},
    ))
    return sum(parts, Pipeline([]))
