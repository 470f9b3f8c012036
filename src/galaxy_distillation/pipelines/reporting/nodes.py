"""Nodes of the ``reporting`` pipeline: image grids, result tables and convergence curves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from galaxy_distillation import figures
from galaxy_distillation.params import ReportingParams
from galaxy_distillation.pipelines.prepare.nodes import display_images


def distilled_grid(distilled_set: dict[str, Any], data_transform: dict[str, Any], reporting: ReportingParams,
                   evaluation_results: dict[str, Any] | None = None) -> Figure:
    """The paper's Figures 1 and 4: one column per class, the starting image above each
    distilled one (display colours: the saved ZCA state and normalisation undone), the
    variant's test accuracy in the caption."""
    initial = (display_images(distilled_set["initial_images"], data_transform)
               if "initial_images" in distilled_set else None)
    return figures.distilled_grid_figure(
        display_images(distilled_set["images"], data_transform), distilled_set["labels"],
        distilled_set["meta"]["class_names"], initial=initial, meta=distilled_set["meta"],
        results=evaluation_results, max_per_class=reporting.grid_max_per_class)


def confusion_matrices(evaluation_results: dict[str, Any]) -> Figure:
    """Which classes the distilled set teaches and which it confuses: the confusion matrices
    (mean over the nets) of distilled, random real and full, side by side."""
    return figures.confusion_figure(evaluation_results)


def convergence_curves(distill_history: pd.DataFrame, distilled_set: dict[str, Any] | None = None,
                       evaluation_results: dict[str, Any] | None = None) -> Figure:
    """Quick-evaluation accuracy from iteration 0 with Random and Full reference lines, matching
    loss, and STM's epoch pool T and step size against iteration."""
    meta = (distilled_set or {}).get("meta") or {}
    return figures.curves_figure(distill_history, meta.get("initial_eval"), evaluation_results, meta)


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
