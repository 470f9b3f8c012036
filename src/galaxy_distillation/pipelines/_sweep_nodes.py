"""Nodes of the table sweeps (``table``, ``table1``, ``table2``): the existing stages, each
skipping work an earlier run already finished with the same settings.

A cell's nodes receive their own earlier outputs through ``*_previous`` catalog entries on the
same files (:class:`~galaxy_distillation.sweep_datasets.OptionalDataset`); when those carry the
same key the node returns them instead of recomputing, so an interrupted sweep resumes where it
stopped and a finished one only rewrites its table. The key is
:func:`~galaxy_distillation.engine.checkpoint.result_key` (the one key of the distillation
checkpoints too) of the data's content (:func:`~galaxy_distillation.pipelines.teacher.nodes.data_fingerprint`),
the experts used (their fingerprint) and the settings that change the numbers: data whose
content changed, or retrained experts, redo every cell; an execution-only setting
(``memory_mode``, ``expert_cache``, ``use_vmap``...) redoes nothing.

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
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from galaxy_distillation import tracking
from galaxy_distillation.compute import run_one
from galaxy_distillation.engine.checkpoint import result_key
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
from galaxy_distillation.pipelines.teacher.nodes import data_fingerprint, evaluate_full_set, experts_for
from galaxy_distillation.sweep import ROW_COLUMNS, Cell, applies, cells, result_tags, results_table
from galaxy_distillation.sweep_datasets import is_skipped

log = logging.getLogger(__name__)

__all__ = ["pass_on", "full_baseline", "distill_cell_node", "evaluate_cell_node", "table_node",
           "distill_cell_task", "evaluate_cell_task"]


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
    key = result_key(data=data_fingerprint(prepared_data), n=evaluation.full_n_nets, epochs=evaluation.full_epochs,
                     lr=evaluation.full_lr, zca=teacher.zca, model=model.spec(),
                     evaluation=evaluation.model_dump(exclude={"n_nets", "epochs", "random_lr", "cross_arch"}))
    if previous and previous.get("key") == key:
        log.info("full baseline: finished, skipped (%.1f%%)", previous["mean"])
        return previous
    compute = compute or ComputeParams()
    result = run_one(evaluate_full_set, (evaluation, model, device, _in_task(progress, compute)),
                     compute.model_dump(), desc="full baseline", progress=progress, shared=(prepared_data,))
    return {**result, "key": key}


def distill_cell_node(table: str, cell: Cell) -> Callable[..., tuple[Any, Any]]:
    """The distill stage of one cell (the variant ``<dataset>_<cell>``: same files and
    checkpoints as a single run of it), skipped when its earlier result has the same settings."""

    def distill_cell(prepared_data: PreparedData, expert_trajectories: Any, previous_set: dict[str, Any] | None,
                     previous_history: pd.DataFrame | None, distill: DistillParams, evaluation: EvaluationParams,
                     model: ArchParams, dataset: str, sweep: SweepParams, device: str, progress: bool,
                     compute: ComputeParams | None = None, teacher: TeacherParams = None,  # None: a bank given directly
                     data_root: str = "", data_label: str | None = None
                     ) -> tuple[dict[str, Any], pd.DataFrame | dict[str, Any]]:
        if not applies(table, dataset, cell, sweep.model_dump()):
            log.info("%s: not part of %s for %s (or not selected by sweep), skipped", cell.name, table, dataset)
            return {"skipped": "not in table"}, {"skipped": "not in table"}
        config = distill.engine_config(cell.method, cell.ipc, cell.init, dataset=dataset)
        experts = experts_for(expert_trajectories, prepared_data, teacher, model)
        key = result_key(data=data_fingerprint(prepared_data), experts=experts.fingerprint(), config=asdict(config),
                         model=model.spec(), dataset=dataset, cell=cell.name,
                         quick=evaluation.model_dump(include={"quick_nets", "quick_epochs_fraction", "epochs", "seed"}))
        if previous_set is not None and previous_history is not None and previous_set["meta"].get("cell_key") == key:
            log.info("%s: distilled set finished, skipped", cell.name)
            return previous_set, previous_history
        compute = compute or ComputeParams()
        if "://" not in distill.checkpoint_root:  # a task on a Ray node: this machine's folder, not its own cwd
            distill = distill.model_copy(update={"checkpoint_root": str(Path(distill.checkpoint_root).resolve())})
        distilled, history = run_one(
            distill_cell_task,
            (experts, distill, evaluation, model, cell, cell.variant(data_label or source_name(dataset, data_root)),
             device,
             _in_task(progress, compute), dataset),
            compute.model_dump(), desc=f"cell {cell.name}", progress=progress, shared=(prepared_data,))
        distilled["meta"]["cell_key"] = key
        return distilled, history

    distill_cell.__name__ = distill_cell.__qualname__ = "distill_cell"
    return distill_cell


def evaluate_cell_node(table: str, cell: Cell) -> Callable[..., dict[str, Any]]:
    """The evaluation stage of one cell: the distilled set and the Random baseline of its IPC,
    collected with the shared Full baseline into the fields of ``evaluation_<variant>.json``;
    the finished cell (its curves and accuracies) is logged as an MLflow child run."""

    def evaluate_cell(prepared_data: PreparedData, distilled_set: dict[str, Any] | None,
                      history: pd.DataFrame | dict[str, Any] | None, previous: dict[str, Any] | None,
                      full: dict[str, Any], evaluation: EvaluationParams, model: ArchParams, dataset: str,
                      sweep: SweepParams, device: str, progress: bool, compute: ComputeParams | None = None,
                      data_root: str = "", data_label: str | None = None
                      ) -> dict[str, Any]:
        if is_skipped(distilled_set) or not applies(table, dataset, cell, sweep.model_dump()):
            return {"skipped": "not in table"}
        key = result_key(distilled=distilled_set["meta"].get("cell_key"), full=full.get("key"),
                         evaluation=evaluation.model_dump(exclude={"full_n_nets", "full_epochs", "full_lr",
                                                                   "cross_arch"}))
        if previous and previous.get("cell_key") == key:
            log.info("%s: evaluation finished, skipped (%.1f%%)", cell.name, previous["distilled_acc_mean"])
            results = previous
        else:
            compute = compute or ComputeParams()
            distilled, random = run_one(
                evaluate_cell_task,
                (distilled_set, evaluation, model, cell.ipc, device, _in_task(progress, compute)),
                compute.model_dump(), desc=f"evaluate {cell.name}", progress=progress, shared=(prepared_data,))
            results, _ = collect_evaluation(distilled, random, full, {}, distilled_set, model, dataset, cell.method,
                                            cell.ipc, cell.init, cell.augmented,
                                            cell.variant(data_label or source_name(dataset, data_root)),
                                            data_label=data_label, tag_run=False)
            rule = evaluation.random_lr if evaluation.random_lr is not None else "learned"
            results = {**results, "random_lr_rule": str(rule), "table": table, "cell_key": key}
        log_cell(cell, results, history)
        return results

    evaluate_cell.__name__ = evaluate_cell.__qualname__ = "evaluate_cell"
    return evaluate_cell


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


def caption(evaluation: EvaluationParams, records: list[dict[str, Any]]) -> str:
    """The protocol under the table: evaluation, Random, Full, presets, stop reasons, selection."""
    rule = evaluation.random_lr if evaluation.random_lr is not None else "learned"
    random = "the distilled set's learned step size" if rule == "learned" else f"a fixed step size {float(rule):g}"
    stops = sorted({str(r.get("stop_reason")) for r in records})
    selections = sorted({str(r.get("selection")) for r in records})
    sources = sorted({(r.get("preset") or {}).get("source", "none (the env's values)") for r in records})
    return (
        f"Distilled: {evaluation.n_nets} fresh nets x {evaluation.epochs} epochs at the learned step size "
        f"(SGD momentum {evaluation.momentum:g}, weight decay {evaluation.weight_decay:g}, lr x0.1 at "
        f"{evaluation.lr_decay_at:g} of the epochs, DSA). Random: a fresh random real subset of the same IPC per "
        f"net, trained the same way with {random}. Full: the whole training set, {evaluation.full_n_nets} nets x "
        f"{evaluation.full_epochs} epochs at lr {evaluation.full_lr:g} (the project's protocol; neither paper nor "
        f"code states one). Presets: {'; '.join(sources) or '-'}. Stop reasons: {', '.join(stops) or '-'}. "
        f"Image selection: {', '.join(selections) or '-'}."
    )


def table_node(table: str, flags: tuple[str, ...]) -> Callable[..., tuple[str, pd.DataFrame]]:
    """The table in the paper's layout, ours beside the paper's numbers and the difference.
    Inputs after the parameters: the Full baselines of ``flags``, then every cell's evaluation
    in :func:`~galaxy_distillation.sweep.cells` order (after ``dataset``, ``evaluation`` and ``data_label``)."""

    def results_table_node(dataset: str, evaluation: EvaluationParams, data_label: str, *results: Any
                           ) -> tuple[str, pd.DataFrame]:
        full = {flag: (None if is_skipped(r) else {"full_acc_mean": r["mean"], "full_acc_std": r["std"]})
                for flag, r in zip(flags, results[: len(flags)], strict=True)}
        evaluations = {c.name: (None if is_skipped(r) else r)
                       for c, r in zip(cells(table), results[len(flags):], strict=True)}
        done = [r for r in evaluations.values() if r is not None]
        markdown, rows = results_table(table, dataset, evaluations, full, caption(evaluation, done), data_label)
        frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
        log.info("%s (%s):\n%s", table, data_label, markdown)
        return markdown, frame.replace({np.nan: None})

    results_table_node.__name__ = results_table_node.__qualname__ = "results_table_node"
    return results_table_node
