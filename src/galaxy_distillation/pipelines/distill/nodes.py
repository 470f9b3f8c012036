"""Nodes of the ``distill`` pipeline: STM (default) or MTT trajectory matching."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from galaxy_distillation import tracking
from galaxy_distillation.compute import Stopped, stop_requested
from galaxy_distillation.engine import Distiller, IterationRecord
from galaxy_distillation.engine.data import pick_device, to_display
from galaxy_distillation.engine.evaluation import quick_evaluator
from galaxy_distillation.engine.resources import ResourceEstimate, check_fits, estimate_distill_bytes
from galaxy_distillation.engine.resume import describe_changes
from galaxy_distillation.params import ArchParams, DistillParams, EvaluationParams, TeacherParams
from galaxy_distillation.pipelines.prepare.nodes import PreparedData
from galaxy_distillation.pipelines.teacher.nodes import data_fingerprint, experts_for
from galaxy_distillation.storage import checkpoint_location

log = logging.getLogger(__name__)


def stop_if_asked(distiller: Distiller, what: str, record: IterationRecord) -> None:
    """The engine's per-iteration callback part that ends a distillation asked to stop
    (:func:`galaxy_distillation.compute.request_stop`: the first Ctrl-C or ``SIGTERM`` of a run)
    at the end of the iteration it is in: its checkpoint is saved first, so a rerun resumes at
    that iteration. This is how a distillation in a node thread (``ThreadRunner``) or a local
    task stops; in the main thread the interrupt itself stops it (resumed from its last
    periodic checkpoint).

    Raises:
        Stopped: the run was asked to stop.
    """
    if not stop_requested():
        return
    distiller.save_checkpoint()
    kept = f"; checkpoint {distiller.checkpoint_store} resumes it" if distiller.checkpoint_store is not None else ""
    raise Stopped(f"{what}: stopped after iteration {record.iteration + 1}{kept}")


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
    teacher: TeacherParams = None,  # None: the bank given is used as it is (checked against the data)
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Distil the training set into ``ipc`` images per class.

    The run checkpoints to ``<distill.checkpoint_root>/<variant>/state.pt`` (a local folder or
    any fsspec URL; by default under ``storage_root``) every ``distill.checkpoint_every``
    iterations and when asked to stop (:func:`stop_if_asked`, between iterations), and resumes
    from there if it was interrupted (a finished variant is returned
    from its final checkpoint at once; a checkpoint made with other settings is discarded with
    a warning).

    The experts are the bank of this data and teacher settings, its first ``teacher.n_experts``
    (:func:`~galaxy_distillation.pipelines.teacher.nodes.experts_for`: experts of other data are
    refused). The checkpoint's key holds the data's content, the experts' fingerprint and the
    settings that change the numbers; a checkpoint of other data, experts or settings is moved
    aside (``state.<time>-<key>.pt``, never deleted) and the run starts afresh.
    Every ``distill.eval_every`` iterations a quick evaluation (``evaluation.quick_nets`` nets,
    ``evaluation.quick_epochs_fraction`` of the evaluation epochs) records test accuracy against
    iteration for the curves; with ``distill.selection: best_train`` the same nets are also
    scored on the real training set, and the images of the best such score are returned.
    Values ``preset`` are filled for (``dataset``, method, ipc) from
    :mod:`galaxy_distillation.presets`; the preset used goes into the meta.

    Returns:
        ``distilled_set`` ({"images": float (ipc*C, ch, H, W), "labels", "initial_images", "meta"}), the
        per-iteration history as a table, and the same history as MLflow metric histories.
    """
    started = start_distillation(prepared_data, expert_trajectories, distill, evaluation, model, method, ipc, init,
                                 variant, device, dataset, teacher)
    return finish_distillation(started, started.distiller.run(progress=progress, on_mismatch="restart"))


@dataclass
class StartedDistillation:
    """A distillation before its iterations (:func:`start_distillation`): what
    :func:`finish_distillation` needs to make its outputs from the engine's result."""

    distiller: Distiller
    data: PreparedData
    experts: Any
    config: Any
    preset: dict[str, Any] | None
    quick: Any
    initial_images: Any
    initial: dict[str, float]
    variant: str
    method: str
    ipc: int
    init: str
    eval_every: int


def distill_bytes(data: PreparedData, experts: Any, config: Any, ipc: int) -> ResourceEstimate:
    """The lower bound of the memory one distillation of ``data`` holds (:func:`estimate_distill_bytes`)."""
    return estimate_distill_bytes(ipc, data.num_classes, tuple(data.train_x.shape[1:]), getattr(experts, "num_params", 0),
                                  config.syn_steps, experts.num_epochs, config.batch_syn)


def start_distillation(prepared_data: PreparedData, expert_trajectories: Any, distill: DistillParams,
                       evaluation: EvaluationParams, model: ArchParams, method: str, ipc: int, init: str, variant: str,
                       device: str, dataset: str | None = None, teacher: TeacherParams = None) -> StartedDistillation:
    """:func:`distill_dataset` up to its iterations: the checks, the engine's :class:`Distiller` (its
    checkpoint folder, quick-evaluation hook and stop callback) and the quick evaluation of the
    initial images. ``distiller.run`` (or a :class:`~galaxy_distillation.engine.BatchedDistiller` of
    several) then :func:`finish_distillation` complete it."""
    data = prepared_data
    expert_trajectories = experts_for(expert_trajectories, data, teacher, model)
    dev = pick_device(device)
    config = distill.engine_config(method, ipc, init, dataset=dataset)
    check_fits(distill_bytes(data, expert_trajectories, config, ipc), dev)
    _, preset = distill.resolved(dataset, method, ipc)
    if preset is not None:
        log.info("preset (%s) for %s %s IPC %d: %s", preset["source"], dataset, method.upper(), int(ipc),
                 preset["applied"])
    quick = evaluation.quick_config(model)
    evaluate = quick_evaluator(data.test_x, data.test_y, data.num_classes, quick, evaluation.seed, dev,
                               should_stop=stop_requested)
    on_train = quick_evaluator(data.train_x, data.train_y, data.num_classes, quick, evaluation.seed, dev,
                               should_stop=stop_requested)

    def hook(iteration: int, images, labels, lr: float) -> dict[str, float]:  # noqa: ANN001 - the engine's hook
        try:
            result = evaluate(iteration, images, labels, lr)
            if config.selection == "best_train":  # the same nets (same seeds), scored on the real training set
                result["train_acc"] = on_train(iteration, images, labels, lr)["test_acc"]
        except Stopped as exc:  # within one epoch; the iteration in progress is not saved
            kept = (f"; checkpoint {distiller.checkpoint_store} resumes it from its last save"
                    if distiller.checkpoint_store is not None else "")
            raise Stopped(f"distillation {variant}: {exc}{kept}") from None
        log.info("iteration %d: quick evaluation %s (%d nets x %d epochs)", iteration,
                 ", ".join(f"{k} {v:.1f}%" for k, v in result.items() if not k.endswith("_std")),
                 quick.n_nets, quick.epochs)
        shown = images.detach().cpu()
        shown = data.zca.inverse_transform(shown) if data.zca is not None else shown
        tracking.log_snapshot(to_display(shown, data.mean, data.std), labels, data.num_classes, iteration)
        return result

    distiller = Distiller(expert_trajectories, data.train_x, data.train_y, data.num_classes,
                          config, dev, arch=model.spec(),
                          checkpoint_dir=checkpoint_location(distill.checkpoint_root, variant), eval_hook=hook,
                          data_key=data_fingerprint(data),
                          callback=lambda record: stop_if_asked(distiller, f"distillation {variant}", record))
    # The quick evaluation of the initial images (iteration 0 of the curves): a resumed run
    # starts from the same seeded initialisation, so it is the same point.
    initial_images = distiller.images.detach().clone()
    initial = hook(0, initial_images, distiller.labels, float(distiller.step_size().detach()))
    distiller.run_info = tracking.run_info()  # stored in each checkpoint: a resumed run names the run it continued
    return StartedDistillation(distiller, data, expert_trajectories, config, preset, quick, initial_images, initial,
                               variant, method, int(ipc), init, int(distill.eval_every))


def finish_distillation(started: StartedDistillation, result: Any
                        ) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """:func:`distill_dataset`'s outputs from a started distillation and its engine result."""
    s, data, expert_trajectories = started, started.data, started.experts
    variant, method, ipc, init, quick = s.variant, s.method, s.ipc, s.init, s.quick
    resumed = report_resume(variant, s.distiller.resumed_from, len(result.history), result.stop_reason)
    history = history_table(result.history)
    meta = {
        "variant": variant, "method": method, "ipc": int(ipc), "init": init, "lr": float(result.lr),
        "stop_reason": result.stop_reason, "n_rejected_steps": int(result.n_rejected_steps),
        "iterations": len(result.history), "max_iterations": int(s.config.iterations),
        "n_experts": len(expert_trajectories), "expert_train_epochs": int(expert_trajectories.num_epochs),
        "class_names": data.class_names,
        "mean": data.mean, "std": data.std, "zca": data.zca is not None,
        "selection": result.selection, "selected_iteration": result.selected_iteration,
        "selected_train_acc": result.selected_train_acc, "preset": s.preset,
        "initial_eval": s.initial,
        "quick_eval": {"n_nets": int(quick.n_nets), "epochs": int(quick.epochs), "eval_every": s.eval_every},
        "data_sha256": data_fingerprint(data), "key": s.distiller.fingerprint(),  # what it was made from
    }
    if resumed:
        meta["resumed_from"] = resumed
    distilled = {
        "images": result.images.detach().cpu().float(),
        "labels": result.labels.detach().cpu().long(),
        "initial_images": s.initial_images.cpu().float(),  # the starting point, shown beside each prototype
        "meta": meta,
    }
    return distilled, history, history_metrics(history)


def report_resume(variant: str, resumed_from: dict[str, Any] | None, iterations: int, stop_reason: str | None
                  ) -> dict[str, Any] | None:
    """Say where a resumed distillation continued from: a log line (iteration, checkpoint, the
    run that wrote it, the settings changed since), and ``resumed_from.*`` tags on the MLflow
    run (``resumed_from.run_id`` links the run that did the earlier iterations). None when the
    run started afresh."""
    if not resumed_from:
        return None
    info = resumed_from.get("run_info") or {}
    changed = resumed_from.get("changed") or {}
    writer = info.get("mlflow_run_id")
    log.info("%s: resumed from the checkpoint %s at iteration %d (written by MLflow run %s); now %d iterations (%s)",
             variant, resumed_from.get("checkpoint"), int(resumed_from["iteration"]),
             f"'{info.get('mlflow_run_name', '')}' {writer}" if writer else "unknown", iterations, stop_reason)
    if changed:
        log.info("%s: settings changed since the checkpoint: %s", variant, describe_changes(changed))
    record = {"iteration": int(resumed_from["iteration"]), "checkpoint": resumed_from.get("checkpoint"),
              "run_id": writer, "run_name": info.get("mlflow_run_name"), "changed": changed}
    tracking.set_tags({"resumed_from.iteration": record["iteration"], "resumed_from.checkpoint": record["checkpoint"],
                       "resumed_from.run_id": writer, "resumed_from.run_name": record["run_name"],
                       "resumed_from.changed": describe_changes(changed) if changed else "none"})
    return record


def history_table(records: list[Any]) -> pd.DataFrame:
    """One row per iteration; the quick evaluations (every ``eval_every``) in ``test_acc``."""
    rows = []
    for record in records:
        row = asdict(record)
        quick = row.pop("eval", None) or {}
        row["test_acc"] = quick.get("test_acc")
        row["train_acc"] = quick.get("train_acc")
        row["test_acc_std"] = quick.get("test_acc_std")
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
