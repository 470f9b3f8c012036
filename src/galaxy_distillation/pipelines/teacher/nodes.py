"""Nodes of the ``teacher`` pipeline: expert trajectories, and the Full-set baseline.

Both train networks on the whole training set, and both depend only on the dataset and on
whether it is augmented, so they are computed once per (dataset, augmented) and shared by
every variant.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from galaxy_distillation.engine.data import pick_device
from galaxy_distillation.engine.evaluation import evaluate_images
from galaxy_distillation.engine.experts import experts_at_once, train_expert_group
from galaxy_distillation.engine.seeding import derive_seed
from galaxy_distillation.params import ArchParams, EvaluationParams, TeacherParams
from galaxy_distillation.pipelines.prepare.nodes import PreparedData

log = logging.getLogger(__name__)

#: ``derive_seed(evaluation.seed, FULL_SEED_KEY)`` seeds the Full-set baseline's nets.
FULL_SEED_KEY = 4


def train_experts(
    prepared_data: PreparedData, teacher: TeacherParams, model: ArchParams, device: str, progress: bool
) -> Iterator[dict[str, Any]]:
    """Train ``teacher.n_experts`` experts; yield each trajectory as soon as it is trained.

    A generator node: Kedro saves every expert as it finishes, so 100 experts of 121 MB
    never sit in memory together. ``teacher.experts_at_once`` experts are trained together as
    one batched program (``auto``: 4 on CUDA, 1 on CPU); each keeps its own seed.

    Yields:
        ``{"index": i, "trajectory": Trajectory}`` with parameters at every epoch (row 0 =
        initialisation) and the test accuracy per epoch.
    """
    data = prepared_data
    dev = pick_device(device)
    config = teacher.engine_config(model)
    k = experts_at_once(teacher.experts_at_once, dev, teacher.n_experts)
    for start in range(0, teacher.n_experts, k):
        indices = list(range(start, min(start + k, teacher.n_experts)))
        trajectories = train_expert_group(
            data.train_x, data.train_y, data.test_x, data.test_y, data.num_classes, config,
            seeds=[derive_seed(teacher.seed, index) for index in indices], device=dev, progress=progress,
        )
        for index, trajectory in zip(indices, trajectories):
            log.info("expert %d/%d: test accuracy %.1f%% after %d epochs",
                     index + 1, teacher.n_experts, trajectory.test_acc[-1], config.epochs)
            yield {"index": index, "trajectory": trajectory}


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
        ``{"mean", "std", "accs", "n_nets", "epochs", "lr", "n_images"}`` (test accuracy in %).
    """
    data = prepared_data
    cfg = evaluation.engine_config(model, evaluation.full_n_nets, evaluation.full_epochs)
    log.info("evaluating on the full set (%d images, %d nets x %d epochs, lr %.3g)",
             len(data.train_y), cfg.n_nets, cfg.epochs, evaluation.full_lr)
    res = evaluate_images(data.train_x, data.train_y, data.test_x, data.test_y, data.num_classes, evaluation.full_lr,
                          cfg, seed=derive_seed(evaluation.seed, FULL_SEED_KEY), device=pick_device(device),
                          progress=progress)
    log.info("full: %.2f +- %.2f %%", res.mean, res.std)
    return {"mean": res.mean, "std": res.std, "accs": list(res.accs), "n_nets": cfg.n_nets, "epochs": cfg.epochs,
            "lr": float(evaluation.full_lr), "n_images": int(len(data.train_y))}
