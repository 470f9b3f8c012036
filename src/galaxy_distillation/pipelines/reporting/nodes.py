"""Nodes of the ``reporting`` pipeline: image grids, result tables and convergence curves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from galaxy_distillation.figures.curves import curves_figure
from galaxy_distillation.figures.images import confusion_figure, distilled_grid_figure
from galaxy_distillation.params import ReportingParams, parse_flag
from galaxy_distillation.pipelines.prepare.nodes import display_images
from galaxy_distillation.pipelines.sweep.table import BUDGET_MARK, BUDGET_NOTE, MOCK_NOTE, budget_columns


def distilled_grid(distilled_set: dict[str, Any], data_transform: dict[str, Any], reporting: ReportingParams,
                   evaluation_results: dict[str, Any] | None = None) -> Figure:
    """The paper's Figures 1 and 4: one column per class, the starting image above each
    distilled one (display colours: the saved ZCA state and normalisation undone), the
    variant's test accuracy in the caption."""
    initial = (display_images(distilled_set["initial_images"], data_transform)
               if "initial_images" in distilled_set else None)
    return distilled_grid_figure(
        display_images(distilled_set["images"], data_transform), distilled_set["labels"],
        distilled_set["meta"]["class_names"], initial=initial, meta=distilled_set["meta"],
        results=evaluation_results, max_per_class=reporting.grid_max_per_class)


def confusion_matrices(evaluation_results: dict[str, Any]) -> Figure:
    """Which classes the distilled set teaches and which it confuses: the confusion matrices
    (mean over the nets) of distilled, random real and full, side by side."""
    return confusion_figure(evaluation_results)


def convergence_curves(distill_history: pd.DataFrame, distilled_set: dict[str, Any] | None = None,
                       evaluation_results: dict[str, Any] | None = None) -> Figure:
    """Quick-evaluation accuracy from iteration 0 with Random and Full reference lines, matching
    loss, and STM's epoch pool T and step size against iteration."""
    meta = (distilled_set or {}).get("meta") or {}
    return curves_figure(distill_history, meta.get("initial_eval"), evaluation_results, meta)


def _cell(row: pd.Series | None, prefix: str) -> str:
    if row is None or row.get(f"{prefix}_acc_mean") is None or pd.isna(row[f"{prefix}_acc_mean"]):
        return ""
    mark = BUDGET_MARK if row.get("budget_vs_paper") not in (None, "paper's") else ""
    return f"{row[f'{prefix}_acc_mean']:.1f} ± {row[f'{prefix}_acc_std']:.1f}{mark}"


def _pick(frame: pd.DataFrame, **match: Any) -> pd.Series | None:
    sel = frame
    for key, value in match.items():
        sel = sel[sel[key] == value]
    return None if sel.empty else sel.iloc[-1]


#: results_table.csv: the run, what makes it comparable (sweep.budget_columns), its accuracies.
COLUMNS = ("variant", "data", "dataset", "method", "ipc", "init", "augmented", "training_set", "iterations",
           "max_iterations", "stop_reason", "n_experts", "expert_epochs", "eval_protocol", "full_protocol",
           "distilled_acc_mean", "distilled_acc_std", "random_acc_mean", "random_acc_std", "full_acc_mean",
           "full_acc_std", "budget_vs_paper")

_DATA_TITLES = {"mock": f"Mock sky ({MOCK_NOTE.split('(', 1)[1].rstrip(')')})", "gz2": "Real GZ2"}


def _row(record: dict[str, Any]) -> dict[str, Any]:
    return {**{k: record.get(k) for k in COLUMNS}, **budget_columns(record), "variant": record.get("variant"),
            "dataset": record.get("dataset"), "augmented": parse_flag(record.get("augmented") or False)}


def results_tables(all_evaluation_results: dict[str, Callable[[], Any]], evaluation_results: dict[str, Any]
                   ) -> tuple[str, pd.DataFrame]:
    """Collect every evaluation JSON run so far into one table of runs with their budgets, and
    the paper's Table 1 and Table 2 layouts per data (mock sky and real GZ2 never share a table).

    Every number whose budget differs from the paper's (mock data, fewer iterations, experts or
    evaluation epochs: :func:`~galaxy_distillation.pipelines.sweep.table.budget_differences`) carries
    :data:`~galaxy_distillation.pipelines.sweep.table.BUDGET_MARK`, explained under the tables.

    Args:
        all_evaluation_results: the partitions of ``data/08_reporting`` (JSON loaders).
        evaluation_results: this run's results (an input so the table waits for them).

    Returns:
        Markdown with the tables, and the flat CSV of all variants (:data:`COLUMNS`).
    """
    rows = []
    for name, load in sorted(all_evaluation_results.items()):
        if not name.startswith("evaluation_"):
            continue
        record = load()
        if "distilled_acc_mean" in record and record.get("variant") != evaluation_results.get("variant"):
            rows.append(record)
    rows.append(evaluation_results)  # this run's, also when its file is not listed yet
    frame = pd.DataFrame([_row(r) for r in rows], columns=list(COLUMNS)).sort_values(
        ["data", "augmented", "ipc", "method", "init"]).reset_index(drop=True)

    lines = ["# Results", "", "Test accuracy (%) mean ± std over the evaluation networks.", "",
             "## Runs and their budgets", "",
             "| run | data | method | IPC | init | training set | iterations (stop) | experts (n x epochs) | "
             "evaluation (nets x epochs) | distilled | random | full (nets x epochs) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, row in frame.iterrows():
        r = {k: "?" if v is None or (isinstance(v, float) and pd.isna(v)) else v for k, v in row.items()}
        lines.append(f"| {r['variant']} | {r['data']} | {r['method']} | {r['ipc']} | {r['init']} | "
                     f"{r['training_set']} | {r['iterations']} ({r['stop_reason']}) | {r['n_experts']} x "
                     f"{r['expert_epochs']} | {r['eval_protocol']} | {_cell(row, 'distilled')} | "
                     f"{_cell(row, 'random')} | {_cell(row, 'full')} ({r['full_protocol']}) |")
    lines.append("")
    for data in [d for d in ("mock", "gz2") if d in set(frame["data"])]:
        table = frame[frame["data"] == data]
        name = "Mock" if data == "mock" else "GZ2"
        lines += [f"## {_DATA_TITLES[data]}: paper Table 2 layout, STM", "",
                  f"| IPC | Random | {name} real init | {name} noise init | {name} full | {name}-Aug real | "
                  f"{name}-Aug noise | {name}-Aug full |", "|---|---|---|---|---|---|---|---|"]
        stm = table[table["method"] == "stm"]
        for ipc in sorted(table["ipc"].unique()):
            plain_real = _pick(stm, ipc=ipc, init="real", augmented=False)
            plain_noise = _pick(stm, ipc=ipc, init="noise", augmented=False)
            aug_real = _pick(stm, ipc=ipc, init="real", augmented=True)
            aug_noise = _pick(stm, ipc=ipc, init="noise", augmented=True)
            random_row = _pick(table[table["augmented"] == False], ipc=ipc)  # noqa: E712
            plain_any = plain_real if plain_real is not None else plain_noise
            aug_any = aug_real if aug_real is not None else aug_noise
            lines.append(
                f"| {ipc} | {_cell(random_row, 'random')} | {_cell(plain_real, 'distilled')} | "
                f"{_cell(plain_noise, 'distilled')} | {_cell(plain_any, 'full')} | {_cell(aug_real, 'distilled')} | "
                f"{_cell(aug_noise, 'distilled')} | {_cell(aug_any, 'full')} |")
        lines.append("")
    lines += ["## All data (paper Table 1 layout, real init)", "",
              "| data | IPC | Random | MTT | STM | Full |", "|---|---|---|---|---|---|"]
    real = frame[frame["init"] == "real"]
    for (data, augmented, ipc), group in real.groupby(["data", "augmented", "ipc"], sort=True):
        label = f"{data}{'-aug' if augmented else ''}"
        mtt, stm = _pick(group, method="mtt"), _pick(group, method="stm")
        any_row = group.iloc[-1]
        lines.append(f"| {label} | {ipc} | {_cell(any_row, 'random')} | {_cell(mtt, 'distilled')} | "
                     f"{_cell(stm, 'distilled')} | {_cell(any_row, 'full')} |")
    lines.append("")
    if (frame["budget_vs_paper"] != "paper's").any():
        lines += [BUDGET_NOTE, ""]
    return "\n".join(lines), frame
