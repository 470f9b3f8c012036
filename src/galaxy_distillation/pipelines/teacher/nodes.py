"""Nodes of the ``teacher`` pipeline: train expert networks and record their trajectories."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from galaxy_distillation.engine.data import pick_device
from galaxy_distillation.engine.experts import ExpertConfig, experts_at_once, train_expert_group
from galaxy_distillation.engine.seeding import derive_seed
from galaxy_distillation.params import with_defaults
from galaxy_distillation.pipelines._prepare import prepare_data

log = logging.getLogger(__name__)


def train_experts(
    model_input: dict[str, Any], teacher: dict[str, Any], model: dict[str, Any], device: str, progress: bool
) -> Iterator[dict[str, Any]]:
    """Train ``teacher.n_experts`` experts; yield each trajectory as soon as it is trained.

    A generator node: Kedro saves every expert as it finishes, so 100 experts of 121 MB
    never sit in memory together. ``teacher.experts_at_once`` experts are trained together as
    one batched program (``auto``: 4 on CUDA, 1 on CPU); each keeps its own seed.

    Yields:
        ``{"index": i, "trajectory": Trajectory}`` with parameters at every epoch (row 0 =
        initialisation) and the test accuracy per epoch.
    """
    teacher, model = with_defaults("teacher", teacher), with_defaults("model", model)
    data = prepare_data(model_input, zca=teacher["zca"])
    dev = pick_device(device)
    config = ExpertConfig(
        epochs=int(teacher["epochs"]),
        lr=float(teacher["lr"]),
        batch_size=int(teacher["batch_size"]),
        momentum=float(teacher.get("momentum", 0.0)),
        weight_decay=float(teacher.get("weight_decay", 0.0)),
        dsa_strategy=str(teacher["dsa_strategy"]),
        arch=dict(model),
    )
    n_experts = int(teacher["n_experts"])
    k = experts_at_once(teacher.get("experts_at_once", "auto"), dev, n_experts)
    for start in range(0, n_experts, k):
        indices = list(range(start, min(start + k, n_experts)))
        trajectories = train_expert_group(
            data.train_x, data.train_y, data.test_x, data.test_y, data.num_classes, config,
            seeds=[derive_seed(int(teacher["seed"]), index) for index in indices], device=dev, progress=progress,
        )
        for index, trajectory in zip(indices, trajectories):
            log.info("expert %d/%d: test accuracy %.1f%% after %d epochs",
                     index + 1, n_experts, trajectory.test_acc[-1], config.epochs)
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
