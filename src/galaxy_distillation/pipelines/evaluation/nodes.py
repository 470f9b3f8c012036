"""Nodes of the ``evaluation`` pipeline: the paper's protocol on the distilled set and on random
real subsets of the same size, across architectures if asked, collected with the Full-set
baseline (computed once per dataset by the ``teacher`` pipeline) into one result. Each evaluation
stops within one epoch when the run is asked to stop (``compute.stop_requested``: ``Stopped``)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from galaxy_distillation import tracking
from galaxy_distillation.compute import stop_requested
from galaxy_distillation.engine.classwise import class_report
from galaxy_distillation.engine.data import pick_device
from galaxy_distillation.engine.evaluation import EvalResult, evaluate_images
from galaxy_distillation.engine.networks import ARCHITECTURES
from galaxy_distillation.engine.seeding import derive_seed, make_generator
from galaxy_distillation.engine.synthetic import random_real_subset
from galaxy_distillation.params import ArchParams, EvaluationParams, parse_flag
from galaxy_distillation.pipelines.prepare.nodes import PreparedData
from galaxy_distillation.pipelines.sweep.table import result_tags
from galaxy_distillation.pipelines.teacher.nodes import check_same_data, data_fingerprint

log = logging.getLogger(__name__)

# Seed keys under ``evaluation.seed``: one per baseline, never shifted by other settings.
_DISTILLED_KEY, _RANDOM_SUBSET_KEY, _RANDOM_NET_KEY, _CROSS_ARCH_KEY = 1, 2, 3, 10
_QUICK_RANDOM_KEY = 11  # the Random reference under the quick protocol (the curves' own)


def _summary(res: EvalResult, lr: float, n_images: int, epochs: int, data: PreparedData | None = None
             ) -> dict[str, Any]:
    out = {"mean": res.mean, "std": res.std, "accs": list(res.accs), "n_nets": len(res.accs), "epochs": epochs,
           "lr": float(lr), "n_images": int(n_images)}
    if data is not None and res.predictions is not None:
        out["classes"] = class_report(res.predictions, data.test_y, data.num_classes)
    return out


def evaluate_distilled(prepared_data: PreparedData, distilled_set: dict[str, Any], evaluation: EvaluationParams,
                       model: ArchParams, device: str, progress: bool) -> dict[str, Any]:
    """Fresh nets trained on the distilled set with its learned step size (the paper's protocol)."""
    check_same_data(data_fingerprint(prepared_data), ("distilled set", distilled_set["meta"]))
    data, lr = prepared_data, float(distilled_set["meta"]["lr"])
    cfg = evaluation.engine_config(model)
    log.info("evaluating on the distilled set (%d images, %d nets x %d epochs, lr %.3g)",
             len(distilled_set["labels"]), cfg.n_nets, cfg.epochs, lr)
    res = evaluate_images(distilled_set["images"], distilled_set["labels"], data.test_x, data.test_y,
                          data.num_classes, lr, cfg, seed=derive_seed(evaluation.seed, _DISTILLED_KEY),
                          device=pick_device(device), progress=progress,
                          should_stop=stop_requested)
    log.info("distilled: %.2f +- %.2f %%", res.mean, res.std)
    return _summary(res, lr, len(distilled_set["labels"]), cfg.epochs, data)


def random_step_size(random_lr: Any, learned_lr: float) -> float:
    """``evaluation.random_lr``: ``learned`` (or null) = the distilled set's learned step size,
    otherwise the fixed value (the reference's GZ2 Random script: 1e-4)."""
    if random_lr is None or random_lr == "learned":
        return float(learned_lr)
    return float(random_lr)


def evaluate_random(prepared_data: PreparedData, distilled_set: dict[str, Any], evaluation: EvaluationParams,
                    model: ArchParams, ipc: int, device: str, progress: bool) -> dict[str, Any]:
    """The "Random" baseline: each of ``evaluation.n_nets`` nets trains on its own random real
    subset of ``ipc`` images per class (so the figure measures random selection rather than one
    lucky draw), with ``evaluation.random_lr`` (a fixed value) or, when it is ``learned``/null, the
    distilled set's step size."""
    data = prepared_data
    lr = random_step_size(evaluation.random_lr, float(distilled_set["meta"]["lr"]))
    cfg = evaluation.engine_config(model)
    one_net, dev = replace(cfg, n_nets=1), pick_device(device)
    accs: list[float] = []
    predictions: list[torch.Tensor] = []
    for k in range(cfg.n_nets):
        x, y = random_real_subset(data.train_x, data.train_y, data.num_classes, int(ipc),
                                  make_generator(derive_seed(evaluation.seed, _RANDOM_SUBSET_KEY, k)))
        res = evaluate_images(x, y, data.test_x, data.test_y, data.num_classes, lr, one_net,
                              seed=derive_seed(evaluation.seed, _RANDOM_NET_KEY, k), device=dev, progress=progress,
                              should_stop=stop_requested)
        accs.extend(res.accs)
        if res.predictions is not None:
            predictions.extend(res.predictions)
    result = EvalResult(accs=accs, mean=float(np.mean(accs)), std=float(np.std(accs)),
                        predictions=torch.stack(predictions) if len(predictions) == len(accs) else None)
    log.info("random real (a fresh subset per net): %.2f +- %.2f %%", result.mean, result.std)
    return _summary(result, lr, int(ipc) * data.num_classes, cfg.epochs, data)


def evaluate_random_quick(prepared_data: PreparedData, distilled_set: dict[str, Any], evaluation: EvaluationParams,
                          model: ArchParams, ipc: int, device: str, progress: bool) -> dict[str, Any]:
    """The Random reference under the quick protocol of the curves (``evaluation.quick_nets``
    nets x ``quick_epochs_fraction`` of the epochs), so the convergence figure compares the
    quick evaluations with a reference evaluated the same way. Its own seeds (a key of its own):
    the final Random and distilled results are unchanged."""
    data = prepared_data
    lr = random_step_size(evaluation.random_lr, float(distilled_set["meta"]["lr"]))
    quick = evaluation.quick_config(model)
    one_net, dev = replace(quick, n_nets=1), pick_device(device)
    accs: list[float] = []
    for k in range(quick.n_nets):
        x, y = random_real_subset(data.train_x, data.train_y, data.num_classes, int(ipc),
                                  make_generator(derive_seed(evaluation.seed, _QUICK_RANDOM_KEY, 0, k)))
        res = evaluate_images(x, y, data.test_x, data.test_y, data.num_classes, lr, one_net,
                              seed=derive_seed(evaluation.seed, _QUICK_RANDOM_KEY, 1, k), device=dev, progress=progress,
                              should_stop=stop_requested)
        accs.extend(res.accs)
    log.info("random real, quick protocol (%d nets x %d epochs): %.2f +- %.2f %%", quick.n_nets, quick.epochs,
             float(np.mean(accs)), float(np.std(accs)))
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "accs": accs, "n_nets": quick.n_nets,
            "epochs": quick.epochs, "lr": lr}


def evaluate_cross_arch(prepared_data: PreparedData, distilled_set: dict[str, Any], evaluation: EvaluationParams,
                        model: ArchParams, device: str, progress: bool) -> dict[str, Any]:
    """The distilled set on each architecture of ``evaluation.cross_arch`` (``{}`` when none)."""
    data, lr, dev = prepared_data, float(distilled_set["meta"]["lr"]), pick_device(device)
    out: dict[str, Any] = {}
    for arch in evaluation.cross_arch:
        cfg = evaluation.engine_config({"arch": arch, "norm": model.norm})
        res = evaluate_images(distilled_set["images"], distilled_set["labels"], data.test_x, data.test_y,
                              data.num_classes, lr, cfg,
                              seed=derive_seed(evaluation.seed, _CROSS_ARCH_KEY, ARCHITECTURES.index(arch)),
                              device=dev, progress=progress,
                              should_stop=stop_requested)
        log.info("distilled (%s): %.2f +- %.2f %%", arch, res.mean, res.std)
        out[arch] = {"mean": res.mean, "std": res.std}
    return out


def collect_evaluation(distilled: dict[str, Any], random: dict[str, Any], full_baseline: dict[str, Any],
                       cross_arch: dict[str, Any], distilled_set: dict[str, Any], model: ArchParams, dataset: str,
                       method: str, ipc: int, init: str, augmented: Any, variant: str, data_label: str | None = None,
                       random_quick: dict[str, Any] | None = None, tag_run: bool = True
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """One result per variant (``evaluation_<variant>.json``) and its MLflow metrics.

    ``classes`` holds, for distilled, random and full, the per-class accuracy and the confusion
    matrix (``[true][predicted]``, mean over the nets, row-normalised and counts;
    :func:`~galaxy_distillation.engine.classwise.class_report`); per-class accuracies are also
    MLflow metrics (``eval.<set>_acc_class_<k>``). The run is tagged ``result.*`` with what makes
    the numbers comparable (data, method, IPC, init, iterations, experts, protocol)."""
    meta = distilled_set["meta"]
    check_same_data(meta.get("data_sha256"), ("Full baseline", full_baseline))
    results: dict[str, Any] = {
        "variant": variant, "dataset": dataset, "data_label": data_label or dataset, "method": method, "ipc": int(ipc), "init": init,
        "augmented": parse_flag(augmented),
        "distilled_acc_mean": distilled["mean"], "distilled_acc_std": distilled["std"],
        "distilled_accs": distilled["accs"],
        "random_acc_mean": random["mean"], "random_acc_std": random["std"], "random_accs": random["accs"],
        "random_lr": random["lr"],
        "full_acc_mean": full_baseline["mean"], "full_acc_std": full_baseline["std"],
        "full_accs": full_baseline["accs"],
        "learned_lr": distilled["lr"], "n_nets": distilled["n_nets"], "epochs": distilled["epochs"],
        "full_n_nets": full_baseline["n_nets"], "full_epochs": full_baseline["epochs"],
        "full_lr": full_baseline["lr"],
        "distill_iterations": meta.get("iterations"), "max_iterations": meta.get("max_iterations"),
        "stop_reason": meta.get("stop_reason"),
        "n_experts": meta.get("n_experts"), "expert_train_epochs": meta.get("expert_train_epochs"),
        "selection": meta.get("selection", "final"),
        "selected_iteration": meta.get("selected_iteration"),
        "preset": meta.get("preset"),
        "arch": model.spec(),
    }
    if cross_arch:
        results["cross_arch"] = cross_arch
    if random_quick:  # the curves' Random reference, evaluated with their quick protocol
        results.update(random_quick_acc_mean=random_quick["mean"], random_quick_acc_std=random_quick["std"],
                       quick_n_nets=random_quick["n_nets"], quick_epochs=random_quick["epochs"])
    classes = class_records(meta.get("class_names"), distilled=distilled, random=random, full=full_baseline)
    if classes:
        results["classes"] = classes
    metrics = {
        key: {"step": 0, "value": float(results[key])}
        for key in ("distilled_acc_mean", "distilled_acc_std", "random_acc_mean", "random_acc_std",
                    "full_acc_mean", "full_acc_std")
    }
    metrics.update(class_metrics(classes))
    if tag_run:  # the active MLflow run (a sweep tags each cell's child run instead)
        tracking.set_tags(result_tags(results))
    return results, metrics


def class_records(class_names: list[str] | None, **summaries: dict[str, Any]) -> dict[str, Any]:
    """``{"class_names", <set>: class_report, ...}`` for the sets whose summary has one
    (``{}`` when none has: e.g. a Full baseline computed before per-class records existed)."""
    out: dict[str, Any] = {name: s["classes"] for name, s in summaries.items() if s and s.get("classes")}
    if not out:
        return {}
    k = len(next(iter(out.values()))["per_class_acc"])
    return {"class_names": list(class_names) if class_names else [str(c) for c in range(k)], **out}


def class_metrics(classes: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per-class test accuracy as MLflow metrics: ``<set>_acc_class_<k>`` (mean over the nets, %)."""
    return {f"{name}_acc_class_{k}": {"step": 0, "value": float(v)}
            for name, record in classes.items() if name != "class_names"
            for k, v in enumerate(record["per_class_acc"])}
