"""Nodes of the ``compare`` pipeline: MTT vs STM over seeds (the paper's Figure 2) and the
ablation of STM's trend threshold lambda (Figure 3).

Every run distils from scratch (no checkpoint) for ``compare.iterations`` iterations with the
``distill`` settings, overriding only the method, the seed, lambda and the evaluation period.
Every ``compare.eval_every`` iterations (and at iteration 0, the initial images) a quick
evaluation trains ``compare.eval_nets`` fresh nets for ``compare.eval_epochs`` epochs on the
current synthetic set with its current step size. The evaluation seeds depend only on the
distillation seed and the iteration, so MTT and STM (and every lambda) are evaluated with the
same network initialisations: the curves differ by the images and step sizes alone.

Every run (method x seed, or lambda) is one task of :func:`galaxy_distillation.compute.run_tasks`:
one after another here, or side by side on a Ray cluster with ``compute.backend: ray``; each
run's curve is logged as an MLflow child run as it comes back. With ``compare.batched: true``
(default false) the runs are one task instead, and those that share a shape (all of them, unless
the method presets give them different ``syn_steps`` or ``batch_syn``) advance as one batched
program per iteration (:class:`~galaxy_distillation.engine.BatchedDistiller`): the same curves to
float rounding, fewer kernel launches per run on a GPU.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure

from galaxy_distillation import tracking
from galaxy_distillation.compute import Stopped, run_tasks, stop_requested
from galaxy_distillation.engine import (
    BatchedDistiller,
    DistillationDivergedError,
    DistillConfig,
    Distiller,
    DistillResult,
    IterationRecord,
)
from galaxy_distillation.engine.data import pick_device
from galaxy_distillation.engine.evaluation import quick_evaluator
from galaxy_distillation.figures.curves import comparison_figure, evaluated_rows, lambda_figure, mean_band, methods_in
from galaxy_distillation.params import (
    ArchParams,
    CompareParams,
    ComputeParams,
    DistillParams,
    EvaluationParams,
    TeacherParams,
)
from galaxy_distillation.pipelines.distill.nodes import stop_if_asked
from galaxy_distillation.pipelines.prepare.nodes import PreparedData
from galaxy_distillation.pipelines.teacher.nodes import experts_for

log = logging.getLogger(__name__)

#: Columns of ``compare_curves`` and ``lambda_curves`` (one row per iteration and run).
CURVE_COLUMNS = ["method", "lam", "seed", "iteration", "test_acc", "test_acc_std", "T", "loss", "val_loss", "lr"]

_METHOD_ORDER = {"mtt": 0, "stm": 1}


def run_config(distill: DistillParams, compare: CompareParams, method: str, ipc: int, seed: int,
               iterations: int, lam: float | None = None, dataset: str | None = None) -> DistillConfig:
    """The engine configuration of one comparison run: the ``distill`` group with the
    method, seed, budget, evaluation period (and lambda) of the comparison; no checkpoints; the
    method's preset for ``dataset`` where a value is ``preset``; the final images (the curves
    report the final accuracy, never the best point of a test curve)."""
    overrides: dict[str, Any] = dict(seed=int(seed), iterations=int(iterations), eval_every=compare.eval_every,
                                     checkpoint_every=0, selection="final")
    if lam is not None:
        overrides["lam"] = float(lam)
    return distill.engine_config(method, ipc, compare.init, dataset=dataset, **overrides)


def _start_run(data: PreparedData, expert_trajectories: Any, config: DistillConfig, model: ArchParams,
               evaluation: EvaluationParams, compare: CompareParams, device: torch.device
               ) -> tuple[Distiller, list[dict[str, Any]], dict[str, Any], str]:
    """One comparison run before its iterations: its Distiller (quick-evaluation hook, log callback),
    the row of iteration 0 (when ``compare.eval_at_start``), its curve label and log tag."""
    quick = evaluation.engine_config(model, compare.eval_nets, compare.eval_epochs)
    lam = float(config.lam) if config.method == "stm" else math.nan
    label = {"method": config.method, "lam": lam, "seed": int(config.seed)}
    quick_hook = quick_evaluator(data.test_x, data.test_y, data.num_classes, quick, evaluation.seed, device,
                                 int(config.seed), should_stop=stop_requested)
    tag = f"{config.method.upper()} seed {config.seed}" + ("" if math.isnan(lam) else f" lambda {lam:g}")

    def hook(iteration: int, images: torch.Tensor, labels: torch.Tensor, lr: float) -> dict[str, float]:
        try:
            return quick_hook(iteration, images, labels, lr)
        except Stopped as exc:  # a stop request: within one epoch of the evaluation
            raise Stopped(f"comparison run {tag}: {exc}") from None

    def report(record: IterationRecord) -> None:
        if record.eval:
            log.info("%s, iteration %d: %.1f%%", tag, record.iteration + 1, record.eval["test_acc"])
        stop_if_asked(distiller, f"comparison run {tag}", record)

    distiller = Distiller(expert_trajectories, data.train_x, data.train_y, data.num_classes, config, device,
                          arch=model.spec(), callback=report, eval_hook=hook)
    rows: list[dict[str, Any]] = []
    if compare.eval_at_start:
        lr0 = float(distiller.step_size().detach())
        start = hook(0, distiller.images.detach().clone(), distiller.labels, lr0)
        log.info("%s, iteration 0: %.1f%%", tag, start["test_acc"])
        rows.append({**label, "iteration": 0, **start, "T": int(distiller.T_now), "loss": math.nan, "val_loss": math.nan, "lr": lr0})
    return distiller, rows, label, tag


def _curve_rows(result: DistillResult, label: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    """One row per iteration of a finished comparison run."""
    rows = []
    for rec in result.history:
        quick_result = rec.eval or {}
        rows.append({
            **label, "iteration": rec.iteration + 1,
            "test_acc": quick_result.get("test_acc", math.nan),
            "test_acc_std": quick_result.get("test_acc_std", math.nan),
            "T": int(rec.T) + int(rec.grew), "loss": rec.loss,
            "val_loss": math.nan if rec.val_loss is None else rec.val_loss, "lr": rec.lr,
        })
    log.info("%s: %s after %d iterations (T = %d)", tag, result.stop_reason, result.iterations_done, result.T)
    return rows


def curve_run(data: PreparedData, expert_trajectories: Any, config: DistillConfig, model: ArchParams,
              evaluation: EvaluationParams, compare: CompareParams, device: torch.device, progress: bool
              ) -> list[dict[str, Any]]:
    """Distil once and return one row per iteration (plus iteration 0 when
    ``compare.eval_at_start``): ``iteration`` = iterations done, ``T`` = the epoch pool after
    that iteration (MTT: ``max_start_epoch``), ``loss``/``val_loss``/``lr`` = the matching
    loss, STM validation loss and student step size of that iteration, ``test_acc`` (mean over
    the quick-evaluation nets, %) only where an evaluation ran, otherwise NaN."""
    distiller, rows, label, tag = _start_run(data, expert_trajectories, config, model, evaluation, compare, device)
    return rows + _curve_rows(distiller.run(progress=progress), label, tag)


def curve_task(data: PreparedData, expert_trajectories: Any, model: ArchParams, evaluation: EvaluationParams,
               compare: CompareParams, device: str, progress: bool, config: DistillConfig) -> list[dict[str, Any]]:
    """One comparison run as a task (module level, so Ray can ship it): :func:`curve_run` on this node's device."""
    return curve_run(data, expert_trajectories, config, model, evaluation, compare, pick_device(device), progress)


def curves_batched_task(data: PreparedData, expert_trajectories: Any, model: ArchParams, evaluation: EvaluationParams,
                        compare: CompareParams, device: str, progress: bool, configs: list[DistillConfig]
                        ) -> list[list[dict[str, Any]] | DistillationDivergedError]:
    """``compare.batched``: every run in ONE task, the runs that share a shape advanced as one program
    per iteration (:class:`~galaxy_distillation.engine.BatchedDistiller`); each run's rows as
    :func:`curve_run` gives them (to float rounding), in the order of ``configs``. A run that
    diverged gives its ``DistillationDivergedError`` (naming the run) in its place, the error
    :func:`curve_run` raises for it alone; the other runs finish as they would alone."""
    dev = pick_device(device)
    started = [_start_run(data, expert_trajectories, c, model, evaluation, compare, dev) for c in configs]
    batch = BatchedDistiller([d for d, *_ in started])
    try:
        batch.run(progress=progress)
    except DistillationDivergedError:
        if not batch.errors:  # not a run's divergence
            raise
    return [DistillationDivergedError(f"comparison run {tag}: {batch.errors[k]}") if result is None
            else rows + _curve_rows(result, label, tag)
            for k, ((_, rows, label, tag), result) in enumerate(zip(started, batch.results))]


def run_curves(data: PreparedData, expert_trajectories: Any, runs: list[tuple[str, dict[str, Any], DistillConfig]],
               model: ArchParams, evaluation: EvaluationParams, compare: CompareParams, device: str, progress: bool,
               compute: ComputeParams | None) -> list[dict[str, Any]]:
    """Every ``(name, params, config)`` run as one task (``compare.batched``: all of them as one task,
    :func:`curves_batched_task`); each curve is logged as the child run ``name`` when it comes back.
    Returns the rows of all runs, in the order of ``runs``.

    Raises:
        DistillationDivergedError: a run diverged (as a run alone raises it; batched: after the other
            runs' curves are logged, naming every diverged run).
    """
    compute = compute or ComputeParams()
    shared = (data, expert_trajectories, model, evaluation, compare, device,
              bool(progress) and compute.backend == "local")
    curves: list[list[dict[str, Any]]] = [[] for _ in runs]
    if compare.batched:
        done = run_tasks(curves_batched_task, [([config for _, _, config in runs],)], compute.model_dump(),
                         shared=shared, desc="comparison runs (batched)", progress=bool(progress))
        done = [(i, rows) for _, all_rows in done for i, rows in enumerate(all_rows)]
    else:
        done = run_tasks(curve_task, [(config,) for _, _, config in runs], compute.model_dump(), shared=shared,
                         desc="comparison runs", progress=bool(progress))
    diverged: list[str] = []
    for i, rows in done:
        if isinstance(rows, DistillationDivergedError):  # compare.batched: that run alone ended so
            diverged.append(str(rows))
            continue
        name, params, _ = runs[i]
        with tracking.child_run(name, params):
            tracking.log_curve(rows)
        curves[i] = rows
    if diverged:
        raise DistillationDivergedError("; ".join(diverged))
    return [row for rows in curves for row in rows]


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def compare_methods(prepared_data: PreparedData, expert_trajectories: Any, compare: CompareParams,
                    distill: DistillParams, evaluation: EvaluationParams, model: ArchParams, ipc: int, device: str,
                    progress: bool, dataset: str | None = None, compute: ComputeParams | None = None,
                    teacher: TeacherParams = None) -> pd.DataFrame:
    """Distil with every method in ``compare.methods`` for every seed in ``compare.seeds``
    (the paper's Figure 2: MTT vs STM test accuracy against iteration, several trials).

    Returns:
        ``compare_curves``: one row per (method, seed, iteration), columns
        :data:`CURVE_COLUMNS` (``lam`` is NaN for MTT).
    """
    runs = [(f"{method} seed {seed}", {"method": method, "seed": seed},
             run_config(distill, compare, method, ipc, seed, compare.iterations, dataset=dataset))
            for method in compare.methods for seed in compare.seeds]
    experts = experts_for(expert_trajectories, prepared_data, teacher, model)  # the bank of this data
    return _table(run_curves(prepared_data, experts, runs, model, evaluation, compare, device, progress, compute))


def lambda_ablation(prepared_data: PreparedData, expert_trajectories: Any, compare: CompareParams,
                    distill: DistillParams, evaluation: EvaluationParams, model: ArchParams, ipc: int, device: str,
                    progress: bool, dataset: str | None = None, compute: ComputeParams | None = None,
                    teacher: TeacherParams = None) -> pd.DataFrame:
    """STM with every lambda in ``compare.lambdas`` on the seed ``compare.lambda_seed`` for
    ``compare.lambda_iterations`` iterations (default ``compare.iterations``): the paper's
    Figure 3 (test accuracy and the epoch pool T against iteration).

    Returns:
        ``lambda_curves``: one row per (lambda, iteration), columns :data:`CURVE_COLUMNS`.
    """
    if not compare.lambdas:
        return _table([])
    iterations = compare.lambda_iterations or compare.iterations
    runs = [(f"stm lambda {lam:g} seed {compare.lambda_seed}", {"method": "stm", "seed": compare.lambda_seed, "lam": lam},
             run_config(distill, compare, "stm", ipc, compare.lambda_seed, iterations, lam=lam, dataset=dataset))
            for lam in compare.lambdas]
    experts = experts_for(expert_trajectories, prepared_data, teacher, model)  # the bank of this data
    return _table(run_curves(prepared_data, experts, runs, model, evaluation, compare, device, progress, compute))


def plot_comparison(compare_curves: pd.DataFrame, compare: CompareParams | None = None) -> Figure:
    """The paper's Figure 2 (:func:`galaxy_distillation.comparison_figure`), budget stated."""
    return comparison_figure(compare_curves, compare.model_dump() if compare is not None else None)


def plot_lambda(lambda_curves: pd.DataFrame, compare: CompareParams | None = None) -> Figure:
    """The paper's Figure 3 (:func:`galaxy_distillation.lambda_figure`), budget stated."""
    return lambda_figure(lambda_curves, compare.model_dump() if compare is not None else None)


def _finals(curves: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The last evaluated row of every run (``keys`` identify a run)."""
    acc = evaluated_rows(curves)
    if acc.empty:
        return acc
    return acc.sort_values("iteration").groupby(keys, dropna=False).tail(1).sort_values(keys)


def _history(series: pd.Series) -> list[dict[str, float]]:
    return [{"step": int(step), "value": float(value)} for step, value in series.dropna().items()]


def summarise_comparison(compare_curves: pd.DataFrame, lambda_curves: pd.DataFrame
                         ) -> tuple[dict[str, Any], dict[str, list[dict[str, float]]]]:
    """Final test accuracy (mean and population std over seeds) of every method and of every
    lambda, for the JSON summary and MLflow.

    Returns:
        The summary (``methods``: per method the seeds, final iterations and accuracies, their
        mean/std (reported: the final accuracy, never the best point of a test curve); ``lambdas``: per lambda the final accuracy, the
        final and largest T and the iterations where T grew; ``stm_minus_mtt``), and MLflow
        metric histories: ``<method>_test_acc_mean`` and ``lam<lambda>_{test_acc,T}`` by
        iteration, ``<method>_final_acc_{mean,std}`` at the final iteration.
    """
    summary: dict[str, Any] = {"methods": {}, "lambdas": {}}
    metrics: dict[str, list[dict[str, float]]] = {}
    finals = _finals(compare_curves, ["method", "seed"])
    acc = evaluated_rows(compare_curves)
    for method in methods_in(finals) if len(finals) else []:
        final = finals[finals["method"] == method]
        band = mean_band(acc[acc["method"] == method])
        values = [float(v) for v in final["test_acc"]]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        summary["methods"][method] = {
            "seeds": [int(s) for s in final["seed"]],
            "final_iteration": [int(i) for i in final["iteration"]],
            "final_accs": values,
            "final_acc_mean": mean,
            "final_acc_std": std,
            "reported": "final",  # the accuracy at the last iteration, never the maximum of the test curve
        }
        metrics[f"{method}_test_acc_mean"] = _history(band["mean"])
        last = int(final["iteration"].max())
        metrics[f"{method}_final_acc_mean"] = [{"step": last, "value": mean}]
        metrics[f"{method}_final_acc_std"] = [{"step": last, "value": std}]
    if {"mtt", "stm"} <= set(summary["methods"]):
        methods = summary["methods"]
        summary["stm_minus_mtt"] = methods["stm"]["final_acc_mean"] - methods["mtt"]["final_acc_mean"]

    lam_finals = _finals(lambda_curves, ["lam"])
    for lam in sorted(lambda_curves["lam"].unique()) if len(lambda_curves) else []:
        run = lambda_curves[lambda_curves["lam"] == lam].sort_values("iteration")
        final = lam_finals[lam_finals["lam"] == lam]
        pool = run.groupby("iteration")["T"].max()
        grew = pool.index[pool.diff() > 0]
        name = f"{float(lam):g}"
        summary["lambdas"][name] = {
            "seed": int(run["seed"].iloc[0]),
            "final_iteration": int(final["iteration"].iloc[-1]) if len(final) else None,
            "final_acc": float(final["test_acc"].iloc[-1]) if len(final) else None,
            "final_T": int(pool.iloc[-1]),
            "max_T": int(pool.max()),
            "growth_iterations": [int(i) for i in grew],
        }
        metrics[f"lam{name}_test_acc"] = _history(evaluated_rows(run).groupby("iteration")["test_acc"].mean())
        metrics[f"lam{name}_T"] = _history(pool)
    return summary, {k: v for k, v in metrics.items() if v}
