"""Nodes of the ``distill`` pipeline: STM (default) or MTT trajectory matching."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from galaxy_distillation.engine import DistillConfig, Distiller
from galaxy_distillation.engine.checkpoint import CheckpointMismatchError
from galaxy_distillation.engine.data import pick_device
from galaxy_distillation.engine.evaluation import evaluate_images
from galaxy_distillation.engine.seeding import derive_seed
from galaxy_distillation.params import with_defaults
from galaxy_distillation.pipelines._prepare import eval_config, prepare_data
from galaxy_distillation.presets import resolve_distill

log = logging.getLogger(__name__)

_ENGINE_KEYS = {"checkpoint_root", "schedule"}
# MTT learns alpha linearly: a step-size rate this large is STM's log-space value.
_MTT_LR_LR_LIMIT = 1e-3


def resolved_distill(distill: dict[str, Any], dataset: str, method: str, ipc: int
                     ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ``distill`` group with every ``preset`` value filled for (dataset, method, ipc)
    (see :mod:`galaxy_distillation.presets`), and the record of the preset used."""
    return resolve_distill(distill, dataset, method, int(ipc))


def distill_config(distill: dict[str, Any], method: str, ipc: int, init: str, dataset: str | None = None
                   ) -> DistillConfig:
    """The engine's configuration from the ``distill`` parameter group and the run choices;
    ``preset`` values are resolved for ``dataset`` first.

    Raises:
        ValueError: MTT with an ``lr_lr`` above 1e-3 (STM's log-space rate used for MTT's linear
            step size), or a ``preset`` value without a preset.
    """
    distill, _ = resolve_distill(distill, str(dataset or ""), method, int(ipc))
    if method == "mtt" and distill.get("lr_lr") is not None and float(distill["lr_lr"]) > _MTT_LR_LR_LIMIT \
            and not distill.get("log_lr"):
        raise ValueError(
            f"invalid parameter 'distill.lr_lr' = {distill['lr_lr']}: MTT learns its step size linearly "
            f"(published 1e-5..1e-7); {distill['lr_lr']} is STM's log-space rate. Use 'preset' or null."
        )
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
        ``distilled_set`` ({"images": float (ipc*C, ch, H, W), "labels", "lr", "meta"}), the
        per-iteration history as a table, and the same history as MLflow metric histories.
    """
    distill, teacher = with_defaults("distill", distill), with_defaults("teacher", teacher)
    evaluation, model = with_defaults("evaluation", evaluation), with_defaults("model", model)
    data = prepare_data(model_input, zca=teacher["zca"])
    dev = pick_device(device)
    dataset = str(model_input.get("name", ""))
    _, preset = resolved_distill(distill, dataset, method, ipc)
    config = distill_config(distill, method, ipc, init, dataset=dataset)
    if preset is not None:
        log.info("preset (%s) for %s %s IPC %d: %s", preset["source"], dataset, method.upper(), int(ipc),
                 preset["applied"])

    def eval_hook(iteration: int, images: torch.Tensor, labels: torch.Tensor, lr: float) -> dict[str, float]:
        """Quick evaluation: test accuracy for the curves; with ``selection: best_train`` also
        the accuracy on the real training set, which alone chooses the returned images."""
        quick = eval_config(evaluation, model, 2, max(1, int(evaluation["epochs"]) // 5))
        seed = derive_seed(int(evaluation["seed"]), iteration)
        result = evaluate_images(images, labels, data.test_x, data.test_y, data.num_classes, lr, quick,
                                 seed=seed, device=dev, progress=False)
        out = {"test_acc": result.mean}
        if config.selection == "best_train":  # the same nets (same seed), scored on the real training set
            out["train_acc"] = evaluate_images(images, labels, data.train_x, data.train_y, data.num_classes, lr,
                                               quick, seed=seed, device=dev, progress=False).mean
        log.info("iteration %d: quick evaluation %s", iteration, ", ".join(f"{k} {v:.1f}%" for k, v in out.items()))
        return out

    checkpoint_dir = Path(distill["checkpoint_root"]) / variant

    def make() -> Distiller:
        return Distiller(expert_trajectories, data.train_x, data.train_y, data.num_classes, config, dev,
                         arch=dict(model), checkpoint_dir=checkpoint_dir, eval_hook=eval_hook)

    try:
        result = make().run(progress=progress)
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
        "selection": result.selection, "selected_iteration": result.selected_iteration,
        "selected_train_acc": result.selected_train_acc, "preset": preset,
        "config": {k: v for k, v in asdict(config).items()},
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
