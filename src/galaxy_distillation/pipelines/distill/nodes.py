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
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Distil the training set into ``ipc`` images per class.

    The run checkpoints to ``<distill.checkpoint_root>/<variant>`` every
    ``distill.checkpoint_every`` iterations and resumes from there if it was interrupted (a
    finished variant is returned from its final checkpoint at once; a checkpoint made with
    other settings is discarded with a warning).
    Every ``distill.eval_every`` iterations a quick evaluation (``evaluation.quick_nets`` nets,
    ``evaluation.quick_epochs_fraction`` of the evaluation epochs) records test accuracy against
    iteration for the curves.

    Returns:
        ``distilled_set`` ({"images": float (ipc*C, ch, H, W), "labels", "meta"}), the
        per-iteration history as a table, and the same history as MLflow metric histories.
    """
    data = prepared_data
    dev = pick_device(device)
    config = distill.engine_config(method, ipc, init)
    check_fits(estimate_distill_bytes(ipc, data.num_classes, tuple(data.train_x.shape[1:]),
                                      getattr(expert_trajectories, "num_params", 0), config.syn_steps,
                                      expert_trajectories.num_epochs, config.batch_syn), dev)
    hook = quick_evaluator(data.test_x, data.test_y, data.num_classes, evaluation.quick_config(model),
                           evaluation.seed, dev)

    def report(record: IterationRecord) -> None:
        if record.eval:
            log.info("iteration %d: quick evaluation %.1f%%", record.iteration + 1, record.eval["test_acc"])

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
        rows.append(row)
    return pd.DataFrame(rows)


def history_metrics(history: pd.DataFrame) -> dict[str, list[dict[str, float]]]:
    """MLflow metric histories (loss, validation loss, T, r, threshold, step size...) by iteration."""
    columns = ["loss", "val_loss", "T", "r", "threshold", "lr", "lr_img", "test_acc"]
    metrics: dict[str, list[dict[str, float]]] = {}
    for column in columns:
        if column not in history:
            continue
        rows = history[["iteration", column]].dropna()
        if len(rows):
            metrics[column] = [{"step": int(i), "value": float(v)} for i, v in rows.itertuples(index=False)]
    return metrics
