"""Nodes of the table sweeps (``table``, ``table1``, ``table2``): the existing stages, each
skipping work an earlier run already finished with the same settings.

A cell's nodes receive their own earlier outputs through ``*_previous`` catalog entries on the
same files (:class:`~galaxy_distillation.sweep_datasets.OptionalDataset`); when those carry the
same settings key the node returns them instead of recomputing, so an interrupted sweep resumes
where it stopped and a finished one only rewrites its table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from galaxy_distillation.engine.data import pick_device
from galaxy_distillation.engine.evaluation import evaluate_images
from galaxy_distillation.engine.seeding import derive_seed
from galaxy_distillation.params import with_defaults
from galaxy_distillation.pipelines._prepare import eval_config, prepare_data
from galaxy_distillation.pipelines.distill.nodes import distill_config, distill_dataset
from galaxy_distillation.pipelines.evaluation.nodes import random_step_size, random_subsets
from galaxy_distillation.pipelines.teacher.nodes import train_experts
from galaxy_distillation.sweep import Cell, applies, cell_key, cells, groups, results_table
from galaxy_distillation.sweep_datasets import is_skipped

log = logging.getLogger(__name__)


def _same_experts(existing: dict[str, Any], teacher: dict[str, Any], model: dict[str, Any],
                  model_input: dict[str, Any]) -> bool:
    cfg = existing.get("config") or {}
    shape = list(model_input["train_x"].shape[1:])
    return (existing["n"] >= int(teacher["n_experts"]) and existing["epochs"] == int(teacher["epochs"])
            and float(cfg.get("lr", -1)) == float(teacher["lr"]) and int(cfg.get("batch_size", -1)) == int(teacher["batch_size"])
            and dict(existing.get("arch") or {}) == dict(model) and list(existing.get("image_shape") or []) == shape)


def train_missing_experts(model_input: dict[str, Any], existing: dict[str, Any], teacher: dict[str, Any],
                          model: dict[str, Any], device: str, progress: bool, *after: Any
                          ) -> Iterator[dict[str, Any]]:
    """The teacher stage, skipped when the folder already holds ``teacher.n_experts`` experts of
    ``teacher.epochs`` epochs with the same rate, batch, network and image shape (otherwise all
    are retrained, which clears the folder)."""
    teacher, model = with_defaults("teacher", teacher), with_defaults("model", model)
    if _same_experts(existing, teacher, model, model_input):
        log.info("experts: %d finished experts found, skipped", existing["n"])
        return
    yield from train_experts(model_input, teacher, model, device, progress)


def full_baseline(model_input: dict[str, Any], previous: dict[str, Any] | None, evaluation: dict[str, Any],
                  teacher: dict[str, Any], model: dict[str, Any], device: str, progress: bool, *after: Any
                  ) -> dict[str, Any]:
    """The "Full dataset" baseline of one training set, shared by every cell on it: the
    project's protocol, ``full_n_nets`` nets x ``full_epochs`` epochs at ``full_lr`` (neither the
    paper nor the code states one)."""
    evaluation, teacher = with_defaults("evaluation", evaluation), with_defaults("teacher", teacher)
    model = with_defaults("model", model)
    key = cell_key(n=evaluation["full_n_nets"], epochs=evaluation["full_epochs"], lr=evaluation["full_lr"],
                   batch=evaluation["batch_size"], dsa=evaluation["dsa_strategy"], seed=evaluation["seed"],
                   zca=teacher["zca"], model=model, name=model_input.get("name"),
                   shape=list(model_input["train_x"].shape))
    if previous and previous.get("key") == key:
        log.info("full baseline: finished, skipped (%.1f%%)", previous["full_acc_mean"])
        return previous
    data = prepare_data(model_input, zca=teacher["zca"])
    cfg = eval_config(evaluation, model, int(evaluation["full_n_nets"]), int(evaluation["full_epochs"]))
    res = evaluate_images(data.train_x, data.train_y, data.test_x, data.test_y, data.num_classes,
                          float(evaluation["full_lr"]), cfg, seed=derive_seed(int(evaluation["seed"]), 4),
                          device=pick_device(device), progress=progress)
    log.info("full baseline: %.2f +- %.2f %%", res.mean, res.std)
    return {"key": key, "full_acc_mean": res.mean, "full_acc_std": res.std, "full_accs": res.accs,
            "full_n_nets": int(evaluation["full_n_nets"]), "full_epochs": int(evaluation["full_epochs"]),
            "full_lr": float(evaluation["full_lr"])}


def distill_cell(model_input: dict[str, Any], expert_trajectories: Any, previous_set: dict[str, Any] | None,
                 previous_history: pd.DataFrame | None, distill: dict[str, Any], teacher: dict[str, Any],
                 evaluation: dict[str, Any], model: dict[str, Any], dataset: str, sweep: dict[str, Any] | None,
                 device: str, progress: bool, *, table: str, cell: Cell
                 ) -> tuple[dict[str, Any], pd.DataFrame | dict[str, Any]]:
    """The distill stage for one cell (the variant ``<dataset>_<cell>``, same files and
    checkpoints as a single run of it); skipped when its earlier result has the same settings."""
    if not applies(table, dataset, cell, sweep):
        log.info("%s: not part of %s for %s (or not selected by sweep), skipped", cell.name, table, dataset)
        return {"skipped": "not in table"}, {"skipped": "not in table"}
    distill, teacher = with_defaults("distill", distill), with_defaults("teacher", teacher)
    model, evaluation = with_defaults("model", model), with_defaults("evaluation", evaluation)
    config = distill_config(distill, cell.method, cell.ipc, cell.init, dataset=dataset)
    key = cell_key(config=asdict(config), teacher=teacher, model=model, dataset=dataset, cell=cell.name,
                   quick_epochs=evaluation["epochs"], n_experts=len(expert_trajectories))
    if previous_set is not None and previous_history is not None and previous_set["meta"].get("cell_key") == key:
        log.info("%s: distilled set finished, skipped", cell.name)
        return previous_set, previous_history
    distilled, history, _ = distill_dataset(model_input, expert_trajectories, distill, teacher, evaluation, model,
                                            cell.method, cell.ipc, cell.init, cell.variant(dataset), device, progress)
    distilled["meta"]["cell_key"] = key
    return distilled, history


def evaluate_cell(model_input: dict[str, Any], distilled_set: dict[str, Any] | None, previous: dict[str, Any] | None,
                  full: dict[str, Any], evaluation: dict[str, Any], teacher: dict[str, Any], model: dict[str, Any],
                  dataset: str, sweep: dict[str, Any] | None, device: str, progress: bool, *, table: str,
                  cell: Cell) -> dict[str, Any]:
    """The evaluation stage for one cell: the distilled set and the Random baseline of its IPC,
    with the shared Full baseline merged in (the fields of ``evaluation_<variant>.json``)."""
    if is_skipped(distilled_set) or not applies(table, dataset, cell, sweep):
        return {"skipped": "not in table"}
    evaluation, teacher = with_defaults("evaluation", evaluation), with_defaults("teacher", teacher)
    model = with_defaults("model", model)
    meta = distilled_set["meta"]
    key = cell_key(distilled=meta.get("cell_key"), evaluation=evaluation, full=full.get("key"))
    if previous and previous.get("cell_key") == key:
        log.info("%s: evaluation finished, skipped (%.1f%%)", cell.name, previous["distilled_acc_mean"])
        return previous
    data = prepare_data(model_input, zca=teacher["zca"])
    dev = pick_device(device)
    seed = int(evaluation["seed"])
    learned_lr = float(meta["lr"])
    cfg = eval_config(evaluation, model, int(evaluation["n_nets"]), int(evaluation["epochs"]))
    distilled = evaluate_images(distilled_set["images"], distilled_set["labels"], data.test_x, data.test_y,
                                data.num_classes, learned_lr, cfg, seed=derive_seed(seed, 1), device=dev,
                                progress=progress)
    random_lr = random_step_size(evaluation.get("random_lr"), learned_lr)
    random = random_subsets(data, cell.ipc, random_lr, cfg, seed, dev, progress)
    log.info("%s: distilled %.2f +- %.2f %%, random %.2f +- %.2f %%", cell.name, distilled.mean, distilled.std,
             random.mean, random.std)
    return {
        "variant": cell.variant(dataset), "dataset": dataset, "method": cell.method, "ipc": cell.ipc,
        "init": cell.init, "augmented": cell.augmented,
        "distilled_acc_mean": distilled.mean, "distilled_acc_std": distilled.std, "distilled_accs": distilled.accs,
        "random_acc_mean": random.mean, "random_acc_std": random.std, "random_accs": random.accs,
        "full_acc_mean": full["full_acc_mean"], "full_acc_std": full["full_acc_std"], "full_accs": full["full_accs"],
        "learned_lr": learned_lr, "n_nets": int(evaluation["n_nets"]), "epochs": int(evaluation["epochs"]),
        "full_n_nets": full["full_n_nets"], "full_epochs": full["full_epochs"], "full_lr": full["full_lr"],
        "distill_iterations": meta.get("iterations"), "stop_reason": meta.get("stop_reason"),
        "selection": meta.get("selection", "final"), "selected_iteration": meta.get("selected_iteration"),
        "preset": meta.get("preset"), "random_lr": random_lr,
        "random_lr_rule": str(evaluation.get("random_lr") or "learned"), "arch": dict(model),
        "table": table, "cell_key": key,
    }


def caption(evaluation: dict[str, Any], distill: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """The protocol under the table: evaluation, Random, Full, schedule and image selection."""
    evaluation, distill = with_defaults("evaluation", evaluation), with_defaults("distill", distill)
    rule = evaluation.get("random_lr") or "learned"
    random = ("the distilled set's learned step size" if rule == "learned" else f"a fixed step size {float(rule):g}")
    stops = sorted({str(r.get("stop_reason")) for r in records})
    selections = sorted({str(r.get("selection")) for r in records})
    sources = sorted({(r.get("preset") or {}).get("source", "none (the env's values)") for r in records})
    return (
        f"Distilled: {evaluation['n_nets']} fresh nets x {evaluation['epochs']} epochs at the learned step size "
        "(SGD momentum 0.9, weight decay 5e-4, lr x0.1 at half, DSA). "
        f"Random: a fresh random real subset of the same IPC per net, trained the same way with {random}. "
        f"Full: the whole training set, {evaluation['full_n_nets']} nets x {evaluation['full_epochs']} epochs at lr "
        f"{float(evaluation['full_lr']):g} (the project's protocol; neither paper nor code states one). "
        f"Presets: {'; '.join(sources)}. Stop reasons: {', '.join(stops)}. Image selection: {', '.join(selections)}."
    )


def sweep_table(dataset: str, evaluation: dict[str, Any], distill: dict[str, Any], *results: Any,
                table: str, flags: tuple[str, ...]) -> tuple[str, pd.DataFrame]:
    """The table in the paper's layout, our numbers beside the paper's and the difference.

    ``results`` are the Full baselines of ``flags`` then every cell's evaluation, in
    :func:`~galaxy_distillation.sweep.cells` order.
    """
    full = dict(zip(flags, results[: len(flags)], strict=True))
    evaluations = {c.name: (None if is_skipped(r) else r)
                   for c, r in zip(cells(table), results[len(flags):], strict=True)}
    done = [r for r in evaluations.values() if r is not None]
    markdown, rows = results_table(table, dataset, evaluations, full, caption(evaluation, distill, done))
    frame = pd.DataFrame(rows, columns=["table", "dataset", "ipc", "column", "ours_mean", "ours_std",
                                        "paper_mean", "paper_std", "difference"])
    log.info("%s (%s):\n%s", table, dataset, markdown)
    return markdown, frame.replace({np.nan: None})


__all__ = ["train_missing_experts", "full_baseline", "distill_cell", "evaluate_cell", "sweep_table", "groups"]
