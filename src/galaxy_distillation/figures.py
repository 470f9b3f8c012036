"""Every figure of the project, in one place (no Kedro, no pyplot state, no ``matplotlib.use``).

Figures are built with matplotlib's object API (:class:`matplotlib.figure.Figure` on a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`), so they render headless and
never touch a global backend. The nodes call these with plain tables and tensors:

* :func:`class_grid` / :func:`montage_figure`: curated galaxies, one row per class.
* :func:`distilled_grid_figure`: the paper's Figures 1 and 4 (classes as columns with their
  names, the starting image beside each prototype, test accuracy in the caption).
* :func:`confusion_figure`: per evaluated set (distilled, random, full) the row-normalised
  confusion matrix (mean over the nets) with the per-class accuracy on its diagonal.
* :func:`curves_figure`: quick-evaluation accuracy (iteration 0 on, mean ± std over nets,
  the Random reference under the same quick protocol; final results as points labelled with
  their own protocol), matching losses, STM's epoch pool and step size.
* :func:`comparison_figure` / :func:`lambda_figure`: the paper's Figures 2 and 3, with the budget
  they ran on stated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter

_METHOD_ORDER = {"mtt": 0, "stm": 1}


def new_figure(width: float, height: float, dpi: int = 100) -> Figure:
    """A figure on its own Agg canvas (``fig.savefig`` works without pyplot)."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def to_hwc_float(img: torch.Tensor) -> np.ndarray:
    """(C, H, W) uint8 or float in [0, 1] -> (H, W, C) float in [0, 1] for imshow ((H, W) if C = 1)."""
    x = img.detach().cpu()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    x = x.clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    return x[..., 0] if x.shape[2] == 1 else x


def _blank(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _show(ax: Any, img: torch.Tensor) -> None:
    arr = to_hwc_float(img)
    ax.imshow(arr, interpolation="nearest", cmap="gray" if arr.ndim == 2 else None)


def _caption(fig: Figure, text: str | None, y: float = 0.005) -> None:
    if text:
        fig.text(0.5, y, text, ha="center", va="bottom", fontsize=8, wrap=True)


def class_grid(rows: Sequence[Sequence[torch.Tensor]], row_labels: Sequence[str], columns: int,
               title: str | None = None, caption: str | None = None) -> Figure:
    """One row of images per class, the row's label on the left, empty cells where a row is short.

    Args:
        rows: per class, its (C, H, W) images (uint8, or float in [0, 1]).
        row_labels: one label per row.
        columns: cells per row.
        title: optional figure title.
        caption: optional line under the grid.
    """
    head, foot = (0.45 if title else 0.0), (0.35 if caption else 0.0)
    height = 1.3 * len(rows) + head + foot
    fig = new_figure(1.3 * columns + 2.2, height)
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for r, images in enumerate(rows):
        for j in range(columns):
            _blank(axes[r][j])
            if j < len(images):
                _show(axes[r][j], images[j])
        axes[r][0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, y=1.0 - 0.08 / height)
    _caption(fig, caption)
    width = 1.3 * columns + 2.2
    fig.subplots_adjust(left=2.1 / width, right=0.99, top=1.0 - (head + 0.05) / height, bottom=(foot + 0.05) / height,
                        wspace=0.04, hspace=0.04)
    return fig


def montage_figure(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], per_class: int = 6,
                   seed: int = 0, mock_sky: bool = False) -> Figure:
    """Example curated galaxies, one row per class (chosen with ``torch.Generator(seed)``);
    titled "mock sky (synthetic galaxies)" when the data is the built-in mock sky."""
    gen = torch.Generator().manual_seed(int(seed))
    rows = []
    for c in range(len(class_names)):
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) > per_class:
            idx = idx[torch.randperm(len(idx), generator=gen)[:per_class]]
        rows.append([images[int(i)] for i in idx])
    size = f"{images.shape[-1]}x{images.shape[-2]}"
    title = ("Curated training galaxies: MOCK SKY (synthetic galaxies, not real GZ2)" if mock_sky
             else "Curated GZ2 training galaxies")
    caption = f"{per_class} random examples per class of {len(labels)} ({size} px), rows = the 9 merged GZ2 classes"
    return class_grid(rows, [f"{c}: {name}" for c, name in enumerate(class_names)], per_class,
                      title=title, caption=caption)


MOCK_NOTE = "MOCK SKY (synthetic galaxies, not real GZ2)"


def data_note(*records: Mapping[str, Any] | None) -> str:
    """`` - MOCK SKY (...)`` for figures of the built-in mock sky (a record's ``data_label`` is
    ``mock``, or its variant starts with ``mock_``), else empty: mock results are never titled as GZ2."""
    for record in records:
        if record and (record.get("data_label") == "mock" or str(record.get("variant", "")).startswith("mock_")):
            return f" - {MOCK_NOTE}"
    return ""


def _acc(record: Mapping[str, Any] | None, prefix: str) -> str:
    if not record or record.get(f"{prefix}_acc_mean") is None:
        return "n/a"
    return f"{record[f'{prefix}_acc_mean']:.1f} ± {record[f'{prefix}_acc_std']:.1f} %"


def distilled_grid_figure(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                          initial: torch.Tensor | None = None, meta: Mapping[str, Any] | None = None,
                          results: Mapping[str, Any] | None = None, max_per_class: int = 10,
                          show_initial: bool = False) -> Figure:
    """The paper's Figures 1 and 4 at one image per class: one column per class (its name on
    top), the starting image above the prototype it became. With several images per class: a
    row per class (its name on the left) with its prototypes side by side; ``show_initial`` adds
    each class's starting images as a second row under it.

    Args:
        images: distilled images in display colours, (N, C, H, W) float in [0, 1].
        labels: (N,) class of each image.
        class_names: the column headers.
        initial: the starting images, same order as ``images`` (None: distilled rows only).
        meta: the distilled set's meta (variant, method, ipc, init, iterations).
        results: the variant's evaluation results (test accuracy for the caption).
        max_per_class: at most this many images per class are shown.
        show_initial: with several images per class, also show the starting images.
    """
    meta = dict(meta or {})
    n_classes = len(class_names)
    per_class = min(int(max_per_class), max(int((labels == c).sum()) for c in range(n_classes)))
    if per_class > 1:
        return _prototype_rows(images, labels, class_names, per_class, initial if show_initial else None, meta,
                               results)
    kinds = [("initial", initial), ("distilled", images)] if initial is not None else [("distilled", images)]
    n_rows = per_class * len(kinds)
    cell = 1.05
    head, foot = 0.8, 0.45
    fig = new_figure(cell * n_classes + 1.2, cell * n_rows + head + foot)
    axes = fig.subplots(n_rows, n_classes, squeeze=False)
    for c in range(n_classes):
        idx = torch.nonzero(labels == c).flatten()[:per_class].tolist()
        for k in range(per_class):
            for j, (kind, source) in enumerate(kinds):
                ax = axes[k * len(kinds) + j][c]
                _blank(ax)
                if k < len(idx):
                    _show(ax, source[idx[k]])
                if c == 0:
                    ax.set_ylabel(kind if per_class == 1 else f"{kind} {k + 1}", fontsize=8)
        axes[0][c].set_title(class_names[c].replace(" ", "\n", 1) if len(class_names[c]) > 12 else class_names[c],
                             fontsize=7.5)
    title, caption = _grid_text(labels, meta, results, per_class)
    fig.suptitle(title, fontsize=10, y=1.0 - 0.1 / (cell * n_rows + head + foot))
    _caption(fig, caption)
    height = cell * n_rows + head + foot
    fig.subplots_adjust(left=1.0 / (cell * n_classes + 1.2), right=0.995, top=1.0 - head / height,
                        bottom=foot / height, wspace=0.05, hspace=0.05)
    return fig


_SET_TITLES = {"distilled": "distilled set", "random": "random real", "full": "full training set"}


def confusion_figure(results: Mapping[str, Any]) -> Figure:
    """Row-normalised confusion matrices (mean over the nets, ``[true][predicted]``) of the
    distilled set, random real and the full training set, side by side, each cell in % of the
    true class's test images; panel titles carry the overall accuracy and the protocol."""
    classes = dict(results.get("classes") or {})
    names = list(classes.get("class_names") or [])
    sets = [k for k in ("distilled", "random", "full") if classes.get(k)]
    if not sets or not names:
        return empty_figure("no per-class records in this evaluation")
    k = len(names)
    side = 0.42 * k + 1.6
    fig = new_figure(side * len(sets) + 2.6, side + 1.6)
    axes = fig.subplots(1, len(sets), squeeze=False)[0]
    short = [n if len(n) <= 14 else n[:13] + "…" for n in names]
    protocol = {"distilled": (results.get("n_nets"), results.get("epochs")),
                "random": (results.get("n_nets"), results.get("epochs")),
                "full": (results.get("full_n_nets"), results.get("full_epochs"))}
    for ax, key in zip(axes, sets, strict=True):
        matrix = 100.0 * np.asarray(classes[key]["confusion"], dtype=float)
        ax.imshow(matrix, cmap="Blues", vmin=0, vmax=100)
        for i in range(k):
            for j in range(k):
                if matrix[i, j] >= 0.5:
                    ax.text(j, i, f"{matrix[i, j]:.0f}", ha="center", va="center", fontsize=6.5,
                            color="white" if matrix[i, j] > 55 else "black")
        nets, epochs = protocol[key]
        ax.set_title(f"{_SET_TITLES[key]}: {_acc(results, key)}\n({nets} nets x {epochs} epochs)", fontsize=8.5)
        ax.set_xticks(range(k), [str(c) for c in range(k)], fontsize=7)
        ax.set_yticks(range(k), [f"{c}: {n}" for c, n in enumerate(short)] if key == sets[0] else
                      [str(c) for c in range(k)], fontsize=7)
        ax.set_xlabel("predicted class", fontsize=8)
    axes[0].set_ylabel("true class", fontsize=8)
    fig.suptitle(f"{results.get('variant', '')}: confusion on the test set (% of each true class, mean over nets)"
                 + data_note(results), fontsize=10)
    fig.subplots_adjust(left=2.4 / (side * len(sets) + 2.6), right=0.99, top=0.8, bottom=0.14, wspace=0.15)
    return fig


def _grid_text(labels: torch.Tensor, meta: Mapping[str, Any], results: Mapping[str, Any] | None, per_class: int
               ) -> tuple[str, str | None]:
    method, init = str(meta.get("method", "")).upper(), meta.get("init")
    title = (f"{meta.get('variant', '')}: {method} distilled set, {meta.get('ipc', per_class)} image(s) per class"
             + (f" ({init} init)" if init else "") + data_note(meta, results))
    lines = []
    if results:
        lines.append(f"Test accuracy of nets trained on these {len(labels)} images: {_acc(results, 'distilled')} "
                     f"({results.get('n_nets', '?')} nets x {results.get('epochs', '?')} epochs); random real "
                     f"{_acc(results, 'random')}, full training set {_acc(results, 'full')}.")
    if meta.get("iterations"):
        lines.append(f"{meta['iterations']} distillation iterations (stop: {meta.get('stop_reason', '?')}).")
    return title, "\n".join(lines) or None


def _prototype_rows(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], per_class: int,
                    initial: torch.Tensor | None, meta: Mapping[str, Any], results: Mapping[str, Any] | None
                    ) -> Figure:
    """Several images per class: a row per class, its prototypes side by side (and, with
    ``initial``, the images they started from in a row under it)."""
    rows, names = [], []
    for c, name in enumerate(class_names):
        idx = torch.nonzero(labels == c).flatten()[:per_class].tolist()
        rows.append([images[i] for i in idx])
        names.append(f"{c}: {name}")
        if initial is not None:
            rows.append([initial[i] for i in idx])
            names.append("  (initial)")
    title, caption = _grid_text(labels, meta, results, per_class)
    return class_grid(rows, names, per_class, title=title, caption=caption)


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
    _caption(fig, "  ".join(caption) or None)
    fig.subplots_adjust(left=0.05, right=0.95, top=0.86, bottom=0.2, wspace=0.3)
    return fig


def empty_figure(message: str) -> Figure:
    """A small figure with one line of text (when there is nothing to plot)."""
    fig = new_figure(6, 3)
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def _evaluated(curves: pd.DataFrame) -> pd.DataFrame:
    """The rows where a quick evaluation ran."""
    return curves[curves["test_acc"].notna()] if len(curves) else curves


def _methods(curves: pd.DataFrame) -> list[str]:
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
    acc = _evaluated(compare_curves)
    if acc.empty:
        return empty_figure("no evaluations in compare_curves")
    fig = new_figure(7.2, 5.0)
    ax = fig.subplots()
    for k, method in enumerate(_methods(acc)):
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
    _caption(fig, budget_text(compare, int(acc["iteration"].max())))
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
        band = mean_band(_evaluated(run))
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
    _caption(fig, f"One seed ({seed}) per λ. " + budget_text(compare, int(lambda_curves["iteration"].max())))
    fig.subplots_adjust(left=0.06, right=0.98, top=0.9, bottom=0.22, wspace=0.2)
    return fig
