"""Nodes of the ``teacher`` pipeline: expert trajectories, and the Full-set baseline.

Both train networks on the whole training set, and both depend only on the dataset and on
whether it is augmented, so they are computed once per (dataset, augmented) and shared by
every variant.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import torch

from galaxy_distillation import tracking
from galaxy_distillation.compute import run_tasks
from galaxy_distillation.engine.classwise import class_report
from galaxy_distillation.engine.data import pick_device
from galaxy_distillation.engine.evaluation import evaluate_images
from galaxy_distillation.engine.experts import ExpertConfig, experts_at_once, train_expert_group
from galaxy_distillation.engine.seeding import derive_seed
from galaxy_distillation.params import ArchParams, ComputeParams, EvaluationParams, TeacherParams
from galaxy_distillation.pipelines.prepare.nodes import PreparedData

log = logging.getLogger(__name__)

#: ``derive_seed(evaluation.seed, FULL_SEED_KEY)`` seeds the Full-set baseline's nets.
FULL_SEED_KEY = 4


def train_expert_group_task(train_x, train_y, test_x, test_y, num_classes, config, seeds, device, progress):
    """One task of the teacher (module level, so Ray can ship it): the engine's ``train_expert_group``
    for the experts of ``seeds`` (one batched program when there are several), on this node's device."""
    return train_expert_group(train_x, train_y, test_x, test_y, num_classes, config,
                              seeds=list(seeds), device=pick_device(device), progress=progress)


def data_fingerprint(data: PreparedData) -> str:
    """SHA-256 of the training and test tensors the experts learn from (experts of other data are retrained)."""
    digest = hashlib.sha256()
    for tensor in (data.train_x, data.train_y, data.test_x, data.test_y):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _matches(meta: dict[str, Any], seed: int, config: ExpertConfig, data_sha: str) -> bool:
    want = {k: v for k, v in asdict(config).items() if k != "dsa_params"}
    return (meta.get("seed") == seed and meta.get("data_sha256") == data_sha
            and json.loads(json.dumps(meta.get("config"))) == json.loads(json.dumps(want)))


def train_experts(
    prepared_data: PreparedData, teacher: TeacherParams, model: ArchParams, device: str, progress: bool,
    expert_inventory: dict[int, dict[str, Any]] | None = None, compute: ComputeParams | None = None,
) -> Iterator[dict[str, Any]]:
    """Train the missing ones of ``teacher.n_experts`` experts; yield each trajectory as it comes back.

    A generator node: Kedro saves every expert as it finishes, so 100 experts of 121 MB
    never sit in memory together, and a run that dies keeps the experts it finished.
    Expert ``i`` is trained with seed ``derive_seed(teacher.seed, i)``, locally or as a Ray
    task (``compute``, see :mod:`galaxy_distillation.compute`); an expert already in
    ``expert_inventory`` with the same seed, settings and data is kept, not retrained.
    ``teacher.experts_at_once`` experts are trained together as one batched program, one task
    (``auto``: 4 on CUDA, 1 on CPU); each keeps its own seed.

    Yields:
        First ``{"keep": [i, ...]}`` (the experts kept; any other expert file is removed),
        then ``{"index": i, "trajectory": Trajectory}`` per trained expert, with parameters
        at every epoch (row 0 = initialisation) and the test accuracy per epoch.
    """
    data = prepared_data
    config = teacher.engine_config(model)
    n_experts = teacher.n_experts
    seeds = [derive_seed(teacher.seed, index) for index in range(n_experts)]
    data_sha = data_fingerprint(data)
    inventory = expert_inventory or {}
    keep = [i for i in range(n_experts) if i in inventory and _matches(inventory[i], seeds[i], config, data_sha)]
    todo = [i for i in range(n_experts) if i not in keep]
    log.info("experts: %d kept, %d to train", len(keep), len(todo))
    yield {"keep": keep}
    compute = compute or ComputeParams()
    shared = (data.train_x, data.train_y, data.test_x, data.test_y, data.num_classes, config)
    per_epoch_bars = bool(progress) and compute.backend == "local"
    # group size from the device the tasks get: this one locally, a GPU per task when Ray grants one
    task_device = pick_device(device) if compute.backend == "local" else torch.device(
        "cuda" if compute.gpus_per_task > 0 else "cpu")
    k = experts_at_once(teacher.experts_at_once, task_device, max(1, len(todo)))
    groups = [todo[start:start + k] for start in range(0, len(todo), k)]
    tasks = [([seeds[i] for i in group], device, per_epoch_bars) for group in groups]
    for g, trajectories in run_tasks(train_expert_group_task, tasks, compute, shared=shared, desc="experts",
                                     progress=bool(progress)):
        for index, trajectory in zip(groups[g], trajectories):
            trajectory.meta.update(index=index, data_sha256=data_sha)
            log.info("expert %d/%d: test accuracy %.1f%% after %d epochs",
                     index + 1, n_experts, trajectory.test_acc[-1], config.epochs)
            log_expert_metrics(index, trajectory.test_acc)
            yield {"index": index, "trajectory": trajectory}


def log_expert_metrics(index: int, test_acc: list[float]) -> None:
    """Per-expert test accuracy per epoch into the active MLflow run (the ``kedro run``'s), if any."""
    tracking.log_histories({f"teacher.expert_{index:04d}.test_acc": [
        {"step": epoch, "value": float(acc)} for epoch, acc in enumerate(test_acc)]})


def summarise_experts(expert_trajectories: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test accuracy per epoch of every expert (JSON summary and MLflow metric histories)."""
    accs = [list(map(float, expert_trajectories.test_acc(i))) for i in range(len(expert_trajectories))]
    n_epochs = len(accs[0]) - 1
    mean_curve = [sum(a[e] for a in accs) / len(accs) for e in range(n_epochs + 1)]
    summary = {
        "n_experts": len(accs),
        "epochs": n_epochs,
        "final_test_acc": [a[-1] for a in accs],
        "final_test_acc_mean": sum(a[-1] for a in accs) / len(accs),
        "test_acc_per_epoch": accs,
    }
    metrics = {"expert_test_acc_mean": [{"step": e, "value": v} for e, v in enumerate(mean_curve)]}
    return summary, metrics


def evaluate_full_set(prepared_data: PreparedData, evaluation: EvaluationParams, model: ArchParams, device: str,
                      progress: bool) -> dict[str, Any]:
    """The "Full dataset" baseline: ``evaluation.full_n_nets`` fresh nets trained
    ``evaluation.full_epochs`` epochs on the whole training set with lr ``evaluation.full_lr``
    (otherwise the evaluation protocol: SGD momentum, weight decay, lr x0.1 at half, DSA).

    Returns:
        ``{"mean", "std", "accs", "n_nets", "epochs", "lr", "n_images", "classes"}`` (test accuracy
        in %; ``classes``: :func:`~galaxy_distillation.engine.classwise.class_report`).
    """
    data = prepared_data
    cfg = evaluation.engine_config(model, evaluation.full_n_nets, evaluation.full_epochs)
    log.info("evaluating on the full set (%d images, %d nets x %d epochs, lr %.3g)",
             len(data.train_y), cfg.n_nets, cfg.epochs, evaluation.full_lr)
    res = evaluate_images(data.train_x, data.train_y, data.test_x, data.test_y, data.num_classes, evaluation.full_lr,
                          cfg, seed=derive_seed(evaluation.seed, FULL_SEED_KEY), device=pick_device(device),
                          progress=progress)
    log.info("full: %.2f +- %.2f %%", res.mean, res.std)
    out = {"mean": res.mean, "std": res.std, "accs": list(res.accs), "n_nets": cfg.n_nets, "epochs": cfg.epochs,
           "lr": float(evaluation.full_lr), "n_images": int(len(data.train_y))}
    if res.predictions is not None:  # per-class accuracy and the confusion matrix (mean over the nets)
        out["classes"] = class_report(res.predictions, data.test_y, data.num_classes)
    return out
