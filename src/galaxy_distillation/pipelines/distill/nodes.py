"""Nodes of the ``distill`` pipeline: STM (default) or MTT trajectory matching."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from galaxy_distillation.engine import Distiller, IterationRecord
from galaxy_distillation.engine.data import pick_device
from galaxy_distillation.engine.evaluation import quick_evaluator
from galaxy_distillation.engine.resources import check_fits, estimate_distill_bytes
from galaxy_distillation.params import ArchParams, DistillParams, EvaluationParams
from galaxy_distillation.pipelines.prepare.nodes import PreparedData

log = logging.getLogger(__name__)


def distill_dataset(
    prepared_data: PreparedData,
    expert_trajectories: Any,
    distill: DistillParams,
    evaluation: EvaluationParams,
    model: ArchParams,
    method: str,
    ipc: int,
    init: str,
    variant: str,
    device: str,
    progress: bool,
    dataset: str | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Distil the training set into ``ipc`` images per class.

    The run checkpoints to ``<distill.checkpoint_root>/<variant>`` every
    ``distill.checkpoint_every`` iterations and resumes from there if it was interrupted (a
    finished variant is returned from its final checkpoint at once; a checkpoint made with
    other settings is discarded with a warning).
    Every ``distill.eval_every`` iterations a quick evaluation (``evaluation.quick_nets`` nets,
    ``evaluation.quick_epochs_fraction`` of the evaluation epochs) records test accuracy against
    iteration for the curves; with ``distill.selection: best_train`` the same nets are also
    scored on the real training set, and the images of the best such score are returned.
    Values ``preset`` are filled for (``dataset``, method, ipc) from
    :mod:`galaxy_distillation.presets`; the preset used goes into the meta.

    Returns:
        ``distilled_set`` ({"images": float (ipc*C, ch, H, W), "labels", "meta"}), the
        per-iteration history as a table, and the same history as MLflow metric histories.
    """
    data = prepared_data
    dev = pick_device(device)
    config = distill.engine_config(method, ipc, init, dataset=dataset)
    check_fits(estimate_distill_bytes(ipc, data.num_classes, tuple(data.train_x.shape[1:]),
                                      getattr(expert_trajectories, "num_params", 0), config.syn_steps,
                                      expert_trajectories.num_epochs, config.batch_syn), dev)
    _, preset = distill.resolved(dataset, method, ipc)
    if preset is not None:
        log.info("preset (%s) for %s %s IPC %d: %s", preset["source"], dataset, method.upper(), int(ipc),
                 preset["applied"])
    quick = evaluation.quick_config(model)
    test_hook = quick_evaluator(data.test_x, data.test_y, data.num_classes, quick, evaluation.seed, dev)
    train_hook = quick_evaluator(data.train_x, data.train_y, data.num_classes, quick, evaluation.seed, dev)

    def hook(iteration: int, images: Any, labels: Any, lr: float) -> dict[str, float]:
        out = test_hook(iteration, images, labels, lr)
        if config.selection == "best_train":  # the same nets (same seeds), scored on the real training set
            out["train_acc"] = train_hook(iteration, images, labels, lr)["test_acc"]
        return out

    def report(record: IterationRecord) -> None:
        if record.eval:
            log.info("iteration %d: quick evaluation %s", record.iteration + 1,
                     ", ".join(f"{k} {v:.1f}%" for k, v in record.eval.items() if not k.endswith("_std")))

    distiller = Distiller(expert_trajectories, data.train_x, data.train_y, data.num_classes,
                          config, dev, arch=model.spec(),
                          checkpoint_dir=Path(distill.checkpoint_root) / variant, callback=report, eval_hook=hook)
    result = distiller.run(progress=progress, on_mismatch="restart")
    history = history_table(result.history)
    meta = {
        "variant": variant, "method": method, "ipc": int(ipc), "init": init, "lr": float(result.lr),
        "stop_reason": result.stop_reason, "n_rejected_steps": int(result.n_rejected_steps),
        "iterations": len(result.history), "class_names": data.class_names,
        "mean": data.mean, "std": data.std, "zca": data.zca is not None,
        "selection": result.selection, "selected_iteration": result.selected_iteration,
        "selected_train_acc": result.selected_train_acc, "preset": preset,
    }
    distilled = {
        "images": result.images.detach().cpu().float(),
        "labels": result.labels.detach().cpu().long(),
        "meta": meta,
    }
    return distilled, history, history_metrics(history)


def history_table(records: list[Any]) -> pd.DataFrame:
    """One row per iteration; the quick evaluations (every ``eval_every``) in ``test_acc``."""
    rows = []
    for record in records:
        row = asdict(record)
        quick = row.pop("eval", None) or {}
        row["test_acc"] = quick.get("test_acc")
        row["train_acc"] = quick.get("train_acc")
        rows.append(row)
    return pd.DataFrame(rows)


def history_metrics(history: pd.DataFrame) -> dict[str, list[dict[str, float]]]:
    """MLflow metric histories (loss, validation loss, T, r, threshold, step size...) by iteration."""
    columns = ["loss", "val_loss", "T", "r", "threshold", "lr", "lr_img", "test_acc", "train_acc"]
    metrics: dict[str, list[dict[str, float]]] = {}
    for column in columns:
        if column not in history:
            continue
        rows = history[["iteration", column]].dropna()
        if len(rows):
            metrics[column] = [{"step": int(i), "value": float(v)} for i, v in rows.itertuples(index=False)]
    return metrics
