"""Nodes of the ``distill`` pipeline: STM (default) or MTT trajectory matching."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from galaxy_distillation import tracking
from galaxy_distillation.engine.checkpoint import CheckpointMismatchError
from galaxy_distillation.engine.data import derive_seed, pick_device, to_display
from galaxy_distillation.engine.evaluation import evaluate_images
from galaxy_distillation.engine.matching import DistillConfig, Distiller
from galaxy_distillation.params import with_defaults
from galaxy_distillation.pipelines._prepare import eval_config, prepare_data

log = logging.getLogger(__name__)

_ENGINE_KEYS = {"checkpoint_root"}


def distill_config(distill: dict[str, Any], method: str, ipc: int, init: str) -> DistillConfig:
    """The engine's configuration from the ``distill`` parameter group and the run choices."""
    kwargs = {k: v for k, v in distill.items() if k not in _ENGINE_KEYS}
    return DistillConfig(method=method, ipc=int(ipc), init=init, **kwargs)


def distill_dataset(
    model_input: dict[str, Any],
    expert_trajectories: Any,
    distill: dict[str, Any],
    teacher: dict[str, Any],
    evaluation: dict[str, Any],
    model: dict[str, Any],
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
    Every ``distill.eval_every`` iterations a quick evaluation (2 nets, a fifth of the
    evaluation epochs) records test accuracy against iteration for the curves.

    Returns:
        ``distilled_set`` ({"images": float (ipc*C, ch, H, W), "labels", "initial_images", "meta"}), the
        per-iteration history as a table, and the same history as MLflow metric histories.
    """
    distill, teacher = with_defaults("distill", distill), with_defaults("teacher", teacher)
    evaluation, model = with_defaults("evaluation", evaluation), with_defaults("model", model)
    data = prepare_data(model_input, zca=teacher["zca"])
    dev = pick_device(device)
    config = distill_config(distill, method, ipc, init)

    def eval_hook(iteration: int, images: torch.Tensor, labels: torch.Tensor, lr: float) -> dict[str, float]:
        quick = eval_config(evaluation, model, 2, max(1, int(evaluation["epochs"]) // 5))
        result = evaluate_images(images, labels, data.test_x, data.test_y, data.num_classes, lr, quick,
                                 seed=derive_seed(int(evaluation["seed"]), iteration), device=dev, progress=False)
        log.info("iteration %d: quick evaluation %.1f%% (%d nets x %d epochs)", iteration, result.mean,
                 quick.n_nets, quick.epochs)
        shown = images.detach().cpu()
        shown = data.zca.inverse_transform(shown) if data.zca is not None else shown
        tracking.log_snapshot(to_display(shown, data.mean, data.std), labels, data.num_classes, iteration)
        return {"test_acc": result.mean, "test_acc_std": result.std}

    checkpoint_dir = Path(distill["checkpoint_root"]) / variant

    def make() -> Distiller:
        return Distiller(expert_trajectories, data.train_x, data.train_y, data.num_classes, config, dev,
                         arch=dict(model), checkpoint_dir=checkpoint_dir, eval_hook=eval_hook)

    # The quick evaluation of the initial images (iteration 0 of the curves): a resumed run
    # starts from the same seeded initialisation, so it is the same point.
    start = make()
    initial_images = start.images.detach().clone()
    initial = eval_hook(0, initial_images, start.labels, float(start.step_size().detach()))
    try:
        result = start.run(progress=progress)
    except CheckpointMismatchError:
        log.warning("The checkpoint in %s was made with other settings: starting this variant afresh.",
                    checkpoint_dir)
        shutil.rmtree(checkpoint_dir)
        result = make().run(progress=progress)
    history = history_table(result.history)
    meta = {
        "variant": variant, "method": method, "ipc": int(ipc), "init": init, "lr": float(result.lr),
        "stop_reason": result.stop_reason, "n_rejected_steps": int(result.n_rejected_steps),
        "iterations": len(result.history), "class_names": data.class_names,
        "mean": data.mean, "std": data.std, "zca": data.zca is not None,
        "initial_eval": initial,
        "quick_eval": {"n_nets": 2, "epochs": max(1, int(evaluation["epochs"]) // 5),
                       "eval_every": int(distill.get("eval_every") or 0)},
    }
    distilled = {
        "images": result.images.detach().cpu().float(),
        "labels": result.labels.detach().cpu().long(),
        "initial_images": initial_images.cpu().float(),  # the starting point, shown beside each prototype
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
        row["test_acc_std"] = quick.get("test_acc_std")
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
