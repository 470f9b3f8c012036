"""Nodes of the table sweeps (``table``, ``table1``, ``table2``): the existing stages, each
skipping work an earlier run already finished with the same settings. Plain module-level
functions: the cell they work on is a parameter (``params:sweep_cells.<table>.<cell>``,
:func:`~galaxy_distillation.pipelines.sweep.cells.cell_params`).

A cell's nodes receive their own earlier outputs through ``*_previous`` catalog entries on the
same files (:class:`~galaxy_distillation.pipelines.sweep.datasets.OptionalDataset`); when those
carry the same key (:mod:`~galaxy_distillation.pipelines.sweep.keys`) the node returns them
instead of recomputing, so an interrupted sweep resumes where it stopped and a finished one only
rewrites its table.

The work of each node (a cell's distillation, its evaluation, a training set's Full baseline)
is one task of :func:`galaxy_distillation.compute.run_one`: in this process, or one Ray task
with ``compute.backend: ray``, which Kedro's ``ThreadRunner`` (chosen by ``kedro run`` then)
keeps in flight beside the other cells' tasks. The training set goes to every task as a
``shared`` argument: one copy in Ray's object store for all the tasks on it. The tasks are module-level functions calling
the same node functions as a single run, with the same seeds. Each finished cell is logged to
MLflow as a child run of the sweep's run (its curves and its accuracies).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from galaxy_distillation import tracking
from galaxy_distillation.compute import run_one
from galaxy_distillation.names import source_name
from galaxy_distillation.params import (
    ArchParams,
    ComputeParams,
    DistillParams,
    EvaluationParams,
    SweepParams,
    TeacherParams,
)
from galaxy_distillation.pipelines.distill.nodes import distill_dataset, history_metrics
from galaxy_distillation.pipelines.evaluation.nodes import collect_evaluation, evaluate_distilled, evaluate_random
from galaxy_distillation.pipelines.prepare.nodes import PreparedData
from galaxy_distillation.pipelines.sweep.cells import Cell, applies, cell_of, cells, groups
from galaxy_distillation.pipelines.sweep.keys import NOT_IN_TABLE, distill_key, evaluation_key, full_key, is_skipped
from galaxy_distillation.pipelines.sweep.table import ROW_COLUMNS, caption, result_tags, results_table
from galaxy_distillation.pipelines.teacher.nodes import evaluate_full_set, experts_for

log = logging.getLogger(__name__)

__all__ = ["pass_on", "full_baseline", "distill_cell", "evaluate_cell", "results_table_node",
           "distill_cell_task", "evaluate_cell_task", "log_cell", "cell_to_distil", "absolute_checkpoints"]


def _in_task(progress: bool, compute: ComputeParams) -> bool:
    """Per-epoch / per-iteration bars inside a task: only in this process (a Ray worker has no terminal)."""
    return bool(progress) and compute.backend == "local"


def distill_cell_task(prepared_data: PreparedData, expert_trajectories: Any, distill: DistillParams,
                      evaluation: EvaluationParams, model: ArchParams, cell: Cell, variant: str, device: str,
                      progress: bool, dataset: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """One cell's distillation (a task: module level, so Ray can ship it): the distill node's function."""
    distilled, history, _ = distill_dataset(prepared_data, expert_trajectories, distill, evaluation, model,
                                            cell.method, cell.ipc, cell.init, variant, device, progress,
                                            dataset=dataset)
    return distilled, history


def evaluate_cell_task(prepared_data: PreparedData, distilled_set: dict[str, Any], evaluation: EvaluationParams,
                       model: ArchParams, ipc: int, device: str, progress: bool
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """One cell's evaluation (a task): fresh nets on the distilled set, and the Random baseline of its IPC."""
    return (evaluate_distilled(prepared_data, distilled_set, evaluation, model, device, progress),
            evaluate_random(prepared_data, distilled_set, evaluation, model, ipc, device, progress))


def pass_on(model_input: dict[str, Any], *_done: Any) -> dict[str, Any]:
    """Pass the model input on once the datasets it waits for exist (ordering only)."""
    return model_input


def full_baseline(prepared_data: PreparedData, previous: dict[str, Any] | None, evaluation: EvaluationParams,
                  teacher: TeacherParams, model: ArchParams, device: str, progress: bool,
                  compute: ComputeParams | None = None) -> dict[str, Any]:
    """The "Full dataset" baseline of one training set (``teacher.evaluate_full_set``, one
    task), shared by every cell on it; skipped when an earlier one has the same settings."""
    key = full_key(prepared_data, evaluation, teacher, model)
    if previous and previous.get("key") == key:
        log.info("full baseline: finished, skipped (%.1f%%)", previous["mean"])
        return previous
    compute = compute or ComputeParams()
    result = run_one(evaluate_full_set, (evaluation, model, device, _in_task(progress, compute)),
                     compute.model_dump(), desc="full baseline", progress=progress, shared=(prepared_data,))
    return {**result, "key": key}


def cell_to_distil(prepared_data: PreparedData, expert_trajectories: Any, previous_set: dict[str, Any] | None,
                   previous_history: pd.DataFrame | None, cell: dict[str, Any], distill: DistillParams,
                   evaluation: EvaluationParams, model: ArchParams, dataset: str, sweep: SweepParams,
                   teacher: TeacherParams = None) -> tuple[Cell, Any, str] | None:
    """What a cell's distillation needs, or ``None`` when there is nothing to compute: the cell is
    not in the table (or not selected by ``sweep``), or its earlier result has the same key.

    Returns:
        The cell, its expert bank (:func:`experts_for`) and its result key (:func:`distill_key`).
    """
    table, this = cell_of(cell)
    if not applies(table, dataset, this, sweep.model_dump()):
        return None
    config = distill.engine_config(this.method, this.ipc, this.init, dataset=dataset)
    experts = experts_for(expert_trajectories, prepared_data, teacher, model)
    key = distill_key(prepared_data, experts.fingerprint(), config, model, dataset, this, evaluation)
    if previous_set is not None and previous_history is not None and previous_set["meta"].get("cell_key") == key:
        return None
    return this, experts, key


def absolute_checkpoints(distill: DistillParams) -> DistillParams:
    """``distill`` with a local ``checkpoint_root`` made absolute: a task on a Ray node writes into
    this machine's folder, not its own working directory."""
    if "://" in distill.checkpoint_root:
        return distill
    return distill.model_copy(update={"checkpoint_root": str(Path(distill.checkpoint_root).resolve())})


def distill_cell(prepared_data: PreparedData, expert_trajectories: Any, previous_set: dict[str, Any] | None,
                 previous_history: pd.DataFrame | None, cell: dict[str, Any], distill: DistillParams,
                 evaluation: EvaluationParams, model: ArchParams, dataset: str, sweep: SweepParams, device: str,
                 progress: bool, compute: ComputeParams | None = None,
                 teacher: TeacherParams = None,  # None: a bank given directly
                 data_root: str = "", data_label: str | None = None, batched: dict[str, Any] | None = None
                 ) -> tuple[dict[str, Any], pd.DataFrame | dict[str, Any]]:
    """The distill stage of one ``cell`` of a table (the variant ``<dataset>_<cell>``: same files
    and checkpoints as a single run of it), skipped when its earlier result has the same key.

    ``batched``: what its shape group's node distilled (:func:`~.batched.distill_batched`, only
    cells of a group with ``sweep.batched``; cell name -> its set and history): this cell's entry,
    when there is one, is its result."""
    table, this = cell_of(cell)
    if batched and this.name in batched:
        return batched[this.name]["distilled"], batched[this.name]["history"]
    if not applies(table, dataset, this, sweep.model_dump()):
        log.info("%s: not part of %s for %s (or not selected by sweep), skipped", this.name, table, dataset)
        return dict(NOT_IN_TABLE), dict(NOT_IN_TABLE)
    todo = cell_to_distil(prepared_data, expert_trajectories, previous_set, previous_history, cell, distill,
                          evaluation, model, dataset, sweep, teacher)
    if todo is None:
        log.info("%s: distilled set finished, skipped", this.name)
        return previous_set, previous_history
    _, experts, key = todo
    compute = compute or ComputeParams()
    distilled, history = run_one(
        distill_cell_task,
        (experts, absolute_checkpoints(distill), evaluation, model, this,
         this.variant(data_label or source_name(dataset, data_root)), device, _in_task(progress, compute), dataset),
        compute.model_dump(), desc=f"cell {this.name}", progress=progress, shared=(prepared_data,))
    distilled["meta"]["cell_key"] = key
    return distilled, history


def evaluate_cell(prepared_data: PreparedData, distilled_set: dict[str, Any] | None,
                  history: pd.DataFrame | dict[str, Any] | None, previous: dict[str, Any] | None,
                  full: dict[str, Any], cell: dict[str, Any], evaluation: EvaluationParams, model: ArchParams,
                  dataset: str, sweep: SweepParams, device: str, progress: bool, compute: ComputeParams | None = None,
                  data_root: str = "", data_label: str | None = None) -> dict[str, Any]:
    """The evaluation stage of one ``cell``: the distilled set and the Random baseline of its
    IPC, collected with the shared Full baseline into the fields of ``evaluation_<variant>.json``;
    the finished cell (its curves and accuracies) is logged as an MLflow child run."""
    table, this = cell_of(cell)
    if is_skipped(distilled_set) or not applies(table, dataset, this, sweep.model_dump()):
        return dict(NOT_IN_TABLE)
    key = evaluation_key(distilled_set, full, evaluation)
    if previous and previous.get("cell_key") == key:
        log.info("%s: evaluation finished, skipped (%.1f%%)", this.name, previous["distilled_acc_mean"])
        results = previous
    else:
        compute = compute or ComputeParams()
        distilled, random = run_one(
            evaluate_cell_task,
            (distilled_set, evaluation, model, this.ipc, device, _in_task(progress, compute)),
            compute.model_dump(), desc=f"evaluate {this.name}", progress=progress, shared=(prepared_data,))
        results, _ = collect_evaluation(distilled, random, full, {}, distilled_set, model, dataset, this.method,
                                        this.ipc, this.init, this.augmented,
                                        this.variant(data_label or source_name(dataset, data_root)),
                                        data_label=data_label, tag_run=False)
        rule = evaluation.random_lr if evaluation.random_lr is not None else "learned"
        results = {**results, "random_lr_rule": str(rule), "table": table, "cell_key": key}
    log_cell(this, results, history)
    return results


def log_cell(cell: Cell, results: dict[str, Any], history: pd.DataFrame | dict[str, Any] | None) -> None:
    """A finished cell as an MLflow child run of the sweep's run (nothing without an active run):
    its settings, its distillation curves by iteration and its accuracies."""
    params = {"cell": cell.name, "method": cell.method, "ipc": cell.ipc, "init": cell.init, "training_set": cell.flag,
              "stop_reason": results.get("stop_reason"), "selection": results.get("selection"),
              "preset": (results.get("preset") or {}).get("source")}
    with tracking.child_run(f"cell {cell.name}", params) as run:
        if run is None:
            return
        tracking.set_tags(result_tags(results))
        if isinstance(history, pd.DataFrame):
            tracking.log_histories(history_metrics(history))
        tracking.log_histories({k: [{"step": 0, "value": float(results[k])}] for k in (
            "distilled_acc_mean", "distilled_acc_std", "random_acc_mean", "random_acc_std", "full_acc_mean")
            if results.get(k) is not None})


def results_table_node(table_cells: dict[str, dict[str, Any]], dataset: str, evaluation: EvaluationParams,
                       data_label: str, *results: Any) -> tuple[str, pd.DataFrame]:
    """The table in the paper's layout, ours beside the paper's numbers and the difference.

    Args:
        table_cells: the table's cells (``params:sweep_cells.<table>``, name -> :func:`cell_params`).
        dataset, evaluation, data_label: the run's parameters.
        results: the Full baselines of the table's training sets (:func:`groups` order), then
            every cell's evaluation (:func:`cells` order); a skip marker where there is none.
    """
    tables = {cell_of(c)[0] for c in table_cells.values()}
    if len(tables) != 1:
        raise KeyError(f"sweep_cells: the cells of one table expected, got those of {sorted(tables)}")
    table = tables.pop()
    flags = groups(table)
    full = {flag: (None if is_skipped(r) else {"full_acc_mean": r["mean"], "full_acc_std": r["std"]})
            for flag, r in zip(flags, results[: len(flags)], strict=True)}
    evaluations = {c.name: (None if is_skipped(r) else r)
                   for c, r in zip(cells(table), results[len(flags):], strict=True)}
    done = [r for r in evaluations.values() if r is not None]
    markdown, rows = results_table(table, dataset, evaluations, full, caption(evaluation, done), data_label)
    frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    log.info("%s (%s):\n%s", table, data_label, markdown)
    return markdown, frame.replace({np.nan: None})
