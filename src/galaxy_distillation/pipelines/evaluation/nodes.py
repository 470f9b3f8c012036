"""Nodes of the ``evaluation`` pipeline: the paper's protocol on distilled, random and full sets."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from galaxy_distillation.engine.data import pick_device
from galaxy_distillation.engine.evaluation import EvalConfig, EvalResult, evaluate_images
from galaxy_distillation.engine.seeding import derive_seed, make_generator
from galaxy_distillation.engine.synthetic import random_real_subset
from galaxy_distillation.params import with_defaults
from galaxy_distillation.pipelines._prepare import eval_config, prepare_data

log = logging.getLogger(__name__)


def random_subsets(data: Any, ipc: int, lr: float, config: EvalConfig, seed: int, device: torch.device,
                   progress: bool) -> EvalResult:
    """The "Random" baseline: each of ``config.n_nets`` nets trains on its own random real
    subset of ``ipc`` images per class, so the figure measures random selection rather than
    one lucky (or unlucky) draw."""
    one_net = replace(config, n_nets=1)
    accs: list[float] = []
    for k in range(config.n_nets):
        x, y = random_real_subset(data.train_x, data.train_y, data.num_classes, ipc,
                                  make_generator(derive_seed(seed, 2, k)))
        res = evaluate_images(x, y, data.test_x, data.test_y, data.num_classes, lr, one_net,
                              seed=derive_seed(seed, 3, k), device=device, progress=progress)
        accs.extend(res.accs)
    return EvalResult(accs=accs, mean=float(np.mean(accs)), std=float(np.std(accs)))


def random_step_size(random_lr: Any, learned_lr: float) -> float:
    """``evaluation.random_lr``: ``learned`` (or null) = the distilled set's learned step size,
    otherwise the fixed value (the reference's GZ2 Random script: 1e-4)."""
    if random_lr is None or (isinstance(random_lr, str) and random_lr == "learned"):
        return float(learned_lr)
    return float(random_lr)


def evaluate_variant(
    model_input: dict[str, Any],
    distilled_set: dict[str, Any],
    evaluation: dict[str, Any],
    teacher: dict[str, Any],
    model: dict[str, Any],
    dataset: str,
    method: str,
    ipc: int,
    init: str,
    augmented: Any,
    variant: str,
    device: str,
    progress: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train fresh networks on the distilled set, a random real subset of the same IPC and the
    full training set; report test accuracy mean and std (percent) of each.

    The distilled set trains with its learned step size (the paper's protocol), the random
    subsets with ``evaluation.random_lr`` (``learned``: the same step size; a number: fixed, as
    the reference's Random script with 1e-4 on GZ2), the full set with the project's "Full"
    protocol (``full_n_nets`` nets x ``full_epochs`` epochs at ``full_lr``; neither paper nor code
    states one). Seeds come from ``evaluation.seed``, so reruns agree.
    """
    evaluation, teacher = with_defaults("evaluation", evaluation), with_defaults("teacher", teacher)
    model = with_defaults("model", model)
    data = prepare_data(model_input, zca=teacher["zca"])
    dev = pick_device(device)
    seed = int(evaluation["seed"])
    learned_lr = float(distilled_set["meta"]["lr"])
    n_nets, epochs = int(evaluation["n_nets"]), int(evaluation["epochs"])

    def run(name: str, x: torch.Tensor, y: torch.Tensor, lr: float, cfg: EvalConfig, key: int) -> EvalResult:
        log.info("evaluating on the %s set (%d images, %d nets x %d epochs, lr %.3g)",
                 name, len(y), cfg.n_nets, cfg.epochs, lr)
        res = evaluate_images(x, y, data.test_x, data.test_y, data.num_classes, lr, cfg,
                              seed=derive_seed(seed, key), device=dev, progress=progress)
        log.info("%s: %.2f +- %.2f %%", name, res.mean, res.std)
        return res

    distilled = run("distilled", distilled_set["images"], distilled_set["labels"], learned_lr,
                    eval_config(evaluation, model, n_nets, epochs), 1)
    random_lr = random_step_size(evaluation.get("random_lr"), learned_lr)
    random = random_subsets(data, int(ipc), random_lr, eval_config(evaluation, model, n_nets, epochs), seed, dev, progress)
    log.info("random real (a fresh subset per net): %.2f +- %.2f %%", random.mean, random.std)
    full = run("full", data.train_x, data.train_y, float(evaluation["full_lr"]),
               eval_config(evaluation, model, int(evaluation["full_n_nets"]), int(evaluation["full_epochs"])), 4)

    results: dict[str, Any] = {
        "variant": variant, "dataset": dataset, "method": method, "ipc": int(ipc), "init": init,
        "augmented": str(augmented).lower() in {"true", "1", "yes"},
        "distilled_acc_mean": distilled.mean, "distilled_acc_std": distilled.std, "distilled_accs": distilled.accs,
        "random_acc_mean": random.mean, "random_acc_std": random.std, "random_accs": random.accs,
        "full_acc_mean": full.mean, "full_acc_std": full.std, "full_accs": full.accs,
        "learned_lr": learned_lr, "n_nets": n_nets, "epochs": epochs,
        "full_n_nets": int(evaluation["full_n_nets"]), "full_epochs": int(evaluation["full_epochs"]),
        "distill_iterations": distilled_set["meta"].get("iterations"),
        "stop_reason": distilled_set["meta"].get("stop_reason"),
        "selection": distilled_set["meta"].get("selection", "final"),
        "selected_iteration": distilled_set["meta"].get("selected_iteration"),
        "preset": distilled_set["meta"].get("preset"),
        "random_lr": random_lr, "random_lr_rule": str(evaluation.get("random_lr") or "learned"),
        "full_lr": float(evaluation["full_lr"]),
        "arch": dict(model),
    }
    for arch in evaluation.get("cross_arch") or []:
        spec = {"arch": arch, "norm": model.get("norm", "instancenorm")}
        res = run(f"distilled ({arch})", distilled_set["images"], distilled_set["labels"], learned_lr,
                  eval_config(evaluation, model, n_nets, epochs, arch=spec), 10 + len(results))
        results.setdefault("cross_arch", {})[arch] = {"mean": res.mean, "std": res.std}
    metrics = {
        key: {"step": 0, "value": float(results[key])}
        for key in ("distilled_acc_mean", "distilled_acc_std", "random_acc_mean", "random_acc_std",
                    "full_acc_mean", "full_acc_std")
    }
    return results, metrics
