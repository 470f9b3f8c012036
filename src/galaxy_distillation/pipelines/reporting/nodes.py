"""Nodes of the ``reporting`` pipeline: image grids, result tables and convergence curves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from galaxy_distillation.figures import class_grid  # noqa: E402
from galaxy_distillation.params import ReportingParams  # noqa: E402
from galaxy_distillation.pipelines.prepare.nodes import display_images  # noqa: E402


def distilled_grid(distilled_set: dict[str, Any], data_transform: dict[str, Any], reporting: ReportingParams) -> Figure:
    """The paper's Figures 1 and 4: one row per class, the class's distilled images along it
    (in display colours: the saved ZCA state and normalisation undone)."""
    images = display_images(distilled_set["images"], data_transform)
    labels = distilled_set["labels"]
    names = distilled_set["meta"]["class_names"]
    n_classes = len(names)
    per_class = min(reporting.grid_max_per_class, max(int((labels == c).sum()) for c in range(n_classes)))
    rows = [[images[int(i)] for i in torch.nonzero(labels == c).flatten()[:per_class]] for c in range(n_classes)]
    meta = distilled_set["meta"]
    title = f"{meta['variant']}: {meta['method'].upper()}, {meta['ipc']} image(s) per class"
    return class_grid(rows, names, per_class, title=title)


def convergence_curves(distill_history: pd.DataFrame) -> Figure:
    """Test accuracy, matching loss and STM's epoch pool T (and the step size) against iteration."""
    h = distill_history
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    if "test_acc" in h and h["test_acc"].notna().any():
        acc = h[["iteration", "test_acc"]].dropna()
        axes[0].plot(acc["iteration"], acc["test_acc"], "o-")
    axes[0].set(title="quick evaluation", xlabel="iteration", ylabel="test accuracy (%)")
    axes[1].plot(h["iteration"], h["loss"], label="matching loss", lw=0.8)
    if "val_loss" in h and h["val_loss"].notna().any():
        axes[1].plot(h["iteration"], h["val_loss"], label="validation loss [T, T+1]", lw=0.8)
    axes[1].set(title="trajectory matching", xlabel="iteration", ylabel="normalised distance")
    axes[1].legend(fontsize=8)
    axes[2].step(h["iteration"], h["T"], where="post", color="C2", label="epoch pool T")
    axes[2].set(title="STM epoch pool and step size", xlabel="iteration", ylabel="T")
    twin = axes[2].twinx()
    twin.plot(h["iteration"], h["lr"], color="C3", lw=0.8, label="step size")
    twin.set_ylabel("student step size", color="C3")
    twin.set_yscale("log")
    fig.tight_layout()
    return fig


def _cell(row: pd.Series | None, prefix: str) -> str:
    if row is None:
        return ""
    return f"{row[f'{prefix}_acc_mean']:.1f} ± {row[f'{prefix}_acc_std']:.1f}"


def _pick(frame: pd.DataFrame, **match: Any) -> pd.Series | None:
    sel = frame
    for key, value in match.items():
        sel = sel[sel[key] == value]
    return None if sel.empty else sel.iloc[-1]


def results_tables(all_evaluation_results: dict[str, Callable[[], Any]], evaluation_results: dict[str, Any]
                   ) -> tuple[str, pd.DataFrame]:
    """Collect every evaluation JSON run so far into the paper's Table 1 and Table 2 layouts.

    Args:
        all_evaluation_results: the partitions of ``data/08_reporting`` (JSON loaders).
        evaluation_results: this run's results (an input so the table waits for them).

    Returns:
        Markdown with both tables, and the flat CSV of all variants.
    """
    rows = []
    for name, load in sorted(all_evaluation_results.items()):
        if not name.startswith("evaluation_"):
            continue
        record = load()
        if "distilled_acc_mean" in record:
            rows.append(record)
    if not any(r.get("variant") == evaluation_results.get("variant") for r in rows):
        rows.append(evaluation_results)
    keep = ["variant", "dataset", "method", "ipc", "init", "augmented", "distilled_acc_mean", "distilled_acc_std",
            "random_acc_mean", "random_acc_std", "full_acc_mean", "full_acc_std"]
    frame = pd.DataFrame([{k: r.get(k) for k in keep} for r in rows]).sort_values(
        ["dataset", "augmented", "ipc", "method", "init"]).reset_index(drop=True)

    lines = ["# Results", "", "Test accuracy (%) mean ± std over the evaluation networks.", ""]
    gz2 = frame[frame["dataset"] == "gz2"]
    if len(gz2):
        lines += ["## GZ2 (paper Table 2 layout, STM)", "",
                  "| IPC | Random | GZ2 real init | GZ2 noise init | GZ2 full | GZ2-Aug real | GZ2-Aug noise | GZ2-Aug full |",
                  "|---|---|---|---|---|---|---|---|"]
        stm = gz2[gz2["method"] == "stm"]
        for ipc in sorted(gz2["ipc"].unique()):
            plain_real = _pick(stm, ipc=ipc, init="real", augmented=False)
            plain_noise = _pick(stm, ipc=ipc, init="noise", augmented=False)
            aug_real = _pick(stm, ipc=ipc, init="real", augmented=True)
            aug_noise = _pick(stm, ipc=ipc, init="noise", augmented=True)
            random_row = _pick(gz2[gz2["augmented"] == False], ipc=ipc)  # noqa: E712
            plain_any = plain_real if plain_real is not None else plain_noise
            aug_any = aug_real if aug_real is not None else aug_noise
            lines.append(
                f"| {ipc} | {_cell(random_row, 'random')} | {_cell(plain_real, 'distilled')} | "
                f"{_cell(plain_noise, 'distilled')} | {_cell(plain_any, 'full')} | {_cell(aug_real, 'distilled')} | "
                f"{_cell(aug_noise, 'distilled')} | {_cell(aug_any, 'full')} |")
        lines.append("")
    lines += ["## All datasets (paper Table 1 layout, real init)", "",
              "| dataset | IPC | Random | MTT | STM | Full |", "|---|---|---|---|---|---|"]
    real = frame[frame["init"] == "real"]
    for (dataset, augmented, ipc), group in real.groupby(["dataset", "augmented", "ipc"], sort=True):
        label = f"{dataset}{'-aug' if augmented else ''}"
        mtt, stm = _pick(group, method="mtt"), _pick(group, method="stm")
        any_row = group.iloc[-1]
        lines.append(f"| {label} | {ipc} | {_cell(any_row, 'random')} | {_cell(mtt, 'distilled')} | "
                     f"{_cell(stm, 'distilled')} | {_cell(any_row, 'full')} |")
    lines.append("")
    return "\n".join(lines), frame
