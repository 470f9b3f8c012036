"""Curve figures: one distillation's accuracy, loss and epoch pool against iteration, and the
comparisons over runs (the paper's Figures 2 and 3).

* :func:`curves_figure`: quick-evaluation accuracy (iteration 0 on, mean ± std over nets,
  the Random reference under the same quick protocol; final results as points labelled with
  their own protocol), matching losses, STM's epoch pool and step size.
* :func:`comparison_figure` / :func:`lambda_figure`: the paper's Figures 2 and 3, with the budget
  they ran on stated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter

from galaxy_distillation.figures.canvas import add_caption, data_note, empty_figure, new_figure

_METHOD_ORDER = {"mtt": 0, "stm": 1}


def _series(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame[["iteration", column]].dropna() if column in frame else frame.iloc[0:0]


def quick_eval_points(history: pd.DataFrame, initial: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The quick evaluations as (iterations done, mean, std): iteration 0 from ``initial``, then
    the history's ``test_acc`` rows (recorded at the 0-based iteration that completed them)."""
    rows = []
    if initial and initial.get("test_acc") is not None:
        rows.append({"done": 0, "mean": float(initial["test_acc"]), "std": float(initial.get("test_acc_std") or 0.0)})
    if "test_acc" in history:
        for _, rec in history[history["test_acc"].notna()].iterrows():
            std = rec.get("test_acc_std") if "test_acc_std" in history else None
            rows.append({"done": int(rec["iteration"]) + 1, "mean": float(rec["test_acc"]),
                         "std": 0.0 if std is None or pd.isna(std) else float(std)})
    return pd.DataFrame(rows, columns=["done", "mean", "std"])


def _readable_log_axis(ax: Any, values: pd.Series) -> None:
    """A log axis with at least two labelled ticks, even when the values span < 1 decade."""
    v = values[values > 0]
    if v.empty:
        return
    lo, hi = float(v.min()), float(v.max())
    if hi / lo < 10:
        mid = math.sqrt(lo * hi)
        lo, hi = min(lo, mid / 1.6), max(hi, mid * 1.6)
        ax.set_ylim(lo, hi)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0), numticks=8))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(lambda y, _pos: f"{y:.3g}")


def curves_figure(history: pd.DataFrame, initial: Mapping[str, Any] | None = None,
                  results: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None) -> Figure:
    """Test accuracy, matching loss and STM's epoch pool T (and the step size) against iteration.

    Args:
        history: the distillation history (one row per iteration; ``test_acc``/``test_acc_std``
            at the quick evaluations).
        initial: the quick evaluation of the initial images (iteration 0).
        results: the evaluation: the Random reference under the quick protocol (a line, when
            recorded) and the final distilled, Random and Full results (points at the last
            iteration, each labelled with its own protocol).
        meta: the distilled set's meta (variant, method, ipc, quick-evaluation size).
    """
    meta = dict(meta or {})
    quick = dict(meta.get("quick_eval") or {})
    h = history
    fig = new_figure(15, 4.4)
    axes = fig.subplots(1, 3)
    points = quick_eval_points(h, initial)
    ax = axes[0]
    results = dict(results or {})
    q_nets = quick.get("n_nets", results.get("quick_n_nets", 2))
    q_epochs = quick.get("epochs", results.get("quick_epochs", "?"))
    if len(points):
        ax.plot(points["done"], points["mean"], "o-", color="C0", ms=4,
                label=f"distilled, quick ({q_nets} nets x {q_epochs} epochs)")
        ax.fill_between(points["done"], points["mean"] - points["std"], points["mean"] + points["std"], color="C0",
                        alpha=0.2, label="± std over nets")
    if results.get("random_quick_acc_mean") is not None:  # the same protocol as the curve: a line across it
        mean = results["random_quick_acc_mean"]
        ax.axhline(mean, color="C7", ls="--", lw=1,
                   label=f"Random real, quick ({results.get('quick_n_nets')} nets x "
                         f"{results.get('quick_epochs')} epochs): {mean:.1f} %")
    end = int(points["done"].max()) if len(points) else (int(h["iteration"].max()) + 1 if len(h) else 0)
    finals = (("distilled", "C0", "D", "distilled", "n_nets", "epochs"), ("random", "C7", "s", "Random real", "n_nets",
              "epochs"), ("full", "C2", "^", "Full training set", "full_n_nets", "full_epochs"))
    for key, colour, marker, name, nets, epochs in finals:  # another protocol: points at the end, labelled
        mean = results.get(f"{key}_acc_mean")
        if mean is not None:
            ax.errorbar([end], [mean], yerr=[results.get(f"{key}_acc_std") or 0.0], color=colour, marker=marker,
                        ms=6, capsize=3, ls="none", mfc="white" if key != "distilled" else colour,
                        label=f"{name}, final ({results.get(nets, '?')} nets x {results.get(epochs, '?')} epochs): "
                              f"{mean:.1f} %")
    ax.set(title="test accuracy during distillation", xlabel="distillation iteration", ylabel="test accuracy (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")

    ax = axes[1]
    ax.plot(h["iteration"] + 1, h["loss"], label="matching loss", lw=0.8)
    val = _series(h, "val_loss")
    if len(val):
        ax.plot(val["iteration"] + 1, val["val_loss"], label="validation loss [T, T+1]", lw=0.8)
    ax.set(title="trajectory matching", xlabel="distillation iteration", ylabel="normalised distance")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    ax = axes[2]
    ax.step(h["iteration"] + 1, h["T"], where="post", color="C2", label="epoch pool T")
    ax.set(title="STM epoch pool and step size" if meta.get("method", "stm") == "stm" else "start epochs and step size",
           xlabel="distillation iteration", ylabel="T (expert epochs)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0, top=max(1, int(h["T"].max()) + 1) if len(h) else 1)
    twin = ax.twinx()
    twin.plot(h["iteration"] + 1, h["lr"], color="C3", lw=0.8, label="step size")
    twin.set_ylabel("student step size (log)", color="C3")
    twin.set_yscale("log")
    _readable_log_axis(twin, h["lr"])
    title = (f"{meta.get('variant', '')}: {str(meta.get('method', '')).upper()}, "
             f"{meta.get('ipc', '?')} image(s) per class" if meta else "distillation") + data_note(meta, results)
    fig.suptitle(title, fontsize=11)
    caption = []
    if quick:
        caption.append(f"Quick evaluation: {quick.get('n_nets', 2)} nets x {quick.get('epochs', '?')} epochs, "
                       f"every {quick.get('eval_every', '?')} iterations and at iteration 0 (band: ± std over the nets).")
    if results:
        caption.append("Each protocol is named in the legend: the line and its band are quick evaluations; the "
                       "points at the end use the final protocols (not comparable with the line's height). Random: "
                       "a fresh real subset per net.")
    add_caption(fig, "  ".join(caption) or None)
    fig.subplots_adjust(left=0.05, right=0.95, top=0.86, bottom=0.2, wspace=0.3)
    return fig


def evaluated_rows(curves: pd.DataFrame) -> pd.DataFrame:
    """The rows where a quick evaluation ran."""
    return curves[curves["test_acc"].notna()] if len(curves) else curves


def methods_in(curves: pd.DataFrame) -> list[str]:
    """The methods in ``curves``, MTT before STM."""
    return sorted(curves["method"].unique(), key=lambda m: (_METHOD_ORDER.get(m, 99), m))


def mean_band(acc: pd.DataFrame) -> pd.DataFrame:
    """Mean, population std and count of ``test_acc`` over runs at each iteration."""
    grouped = acc.groupby("iteration")["test_acc"]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=0), "n": grouped.count()})


def budget_text(compare: Mapping[str, Any] | None, iterations: int | None = None) -> str:
    """The budget a comparison ran on, and the paper's, for the caption."""
    if not compare:
        return ""
    its = iterations or compare.get("iterations")
    return (f"Budget: {its} distillation iterations; quick evaluation every {compare.get('eval_every')} iterations, "
            f"{compare.get('eval_nets')} nets x {compare.get('eval_epochs')} epochs "
            f"(the paper: 5000 iterations on a GPU). A short CPU budget shows the early part of the curves only.")


def comparison_figure(compare_curves: pd.DataFrame, compare: Mapping[str, Any] | None = None) -> Figure:
    """Test accuracy against distillation iteration, mean over seeds with a ± std band for each
    method, each seed as a thin line (the paper's Figure 2), with the budget stated."""
    acc = evaluated_rows(compare_curves)
    if acc.empty:
        return empty_figure("no evaluations in compare_curves")
    fig = new_figure(7.2, 5.0)
    ax = fig.subplots()
    for k, method in enumerate(methods_in(acc)):
        colour = f"C{k}"
        group = acc[acc["method"] == method]
        for _, run in group.groupby("seed"):
            ax.plot(run["iteration"], run["test_acc"], color=colour, lw=0.6, alpha=0.35)
        band = mean_band(group)
        n_seeds = group["seed"].nunique()
        ax.plot(band.index, band["mean"], "o-", color=colour, ms=3.5,
                label=f"{method.upper()} (mean ± std, {n_seeds} seed{'s' if n_seeds != 1 else ''})")
        ax.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"], color=colour, alpha=0.2)
    ax.set(title="MTT vs STM: test accuracy during distillation", xlabel="distillation iteration",
           ylabel="test accuracy (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    add_caption(fig, budget_text(compare, int(acc["iteration"].max())))
    fig.subplots_adjust(left=0.11, right=0.97, top=0.92, bottom=0.24)
    return fig


def lambda_figure(lambda_curves: pd.DataFrame, compare: Mapping[str, Any] | None = None) -> Figure:
    """STM for each lambda: test accuracy and the epoch pool T against iteration (Figure 3)."""
    if lambda_curves.empty:
        return empty_figure("no lambdas in lambda_curves")
    fig = new_figure(12, 4.8)
    axes = fig.subplots(1, 2)
    for k, lam in enumerate(sorted(lambda_curves["lam"].unique())):
        colour = f"C{k}"
        run = lambda_curves[lambda_curves["lam"] == lam]
        band = mean_band(evaluated_rows(run))
        axes[0].plot(band.index, band["mean"], "o-", color=colour, ms=3.5, label=f"λ = {lam:g}")
        pool = run.groupby("iteration")["T"].mean()
        axes[1].step(pool.index, pool.values, where="post", color=colour, label=f"λ = {lam:g}")
    axes[0].set(title="STM: test accuracy by λ", xlabel="distillation iteration", ylabel="test accuracy (%)")
    axes[1].set(title="STM: epoch pool T by λ", xlabel="distillation iteration", ylabel="T (expert epochs)")
    axes[1].set_ylim(bottom=0)
    axes[1].yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    seed = int(lambda_curves["seed"].iloc[0])
    add_caption(fig, f"One seed ({seed}) per λ. " + budget_text(compare, int(lambda_curves["iteration"].max())))
    fig.subplots_adjust(left=0.06, right=0.98, top=0.9, bottom=0.22, wspace=0.2)
    return fig
