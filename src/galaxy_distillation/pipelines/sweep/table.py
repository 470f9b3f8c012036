"""A sweep's results table: the paper's layout with its numbers beside ours, each number's
budget (how it differs from the paper's), the MLflow ``result.*`` tags of an evaluated variant
and the protocol caption under the table.

Pure functions (no Kedro, no torch).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from galaxy_distillation.pipelines.sweep.cells import cells
from galaxy_distillation.presets import PAPER_BUDGET, PAPER_TABLE1, PAPER_TABLE2

if TYPE_CHECKING:
    from galaxy_distillation.params import EvaluationParams

__all__ = ["results_table", "caption", "budget_columns", "budget_differences", "budgets_markdown", "result_tags",
           "ROW_COLUMNS", "BUDGET_MARK", "BUDGET_NOTE", "MOCK_NOTE"]


# ---------------------------------------------------------------------------- budgets

#: The marker of a number whose budget differs from the paper's, and the note under each table.
BUDGET_MARK = "†"
BUDGET_NOTE = (f"{BUDGET_MARK} Budget differs from the paper's ({PAPER_BUDGET['n_experts']} experts x "
               f"{PAPER_BUDGET['expert_epochs']} epochs, up to {PAPER_BUDGET['iterations']} or more iterations until "
               f"the stop rule, evaluation {PAPER_BUDGET['eval_nets']} nets x {PAPER_BUDGET['eval_epochs']} epochs) "
               "or the data is not the paper's: not comparable with the paper's numbers, nor with a number of "
               "another budget; the budgets table says which.")
MOCK_NOTE = "mock sky (synthetic galaxies, not real GZ2)"


def _text(value: Any) -> str:
    return "?" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def budget_columns(record: dict[str, Any]) -> dict[str, Any]:
    """What makes an evaluation record's numbers comparable: data (``mock``/``gz2``/...),
    method, IPC, init, training set, iterations run and why they stopped, experts (count x
    epochs), evaluation protocol (nets x epochs; Full's own), and how it differs from the paper."""
    label = record.get("data_label") or record.get("dataset")
    return {
        "data": label, "method": record.get("method"), "ipc": record.get("ipc"), "init": record.get("init"),
        "training_set": "aug" if record.get("augmented") else "plain",
        "iterations": record.get("distill_iterations"), "max_iterations": record.get("max_iterations"),
        "stop_reason": record.get("stop_reason"),
        "n_experts": record.get("n_experts"), "expert_epochs": record.get("expert_train_epochs"),
        "eval_protocol": f"{_text(record.get('n_nets'))} x {_text(record.get('epochs'))}",
        "full_protocol": f"{_text(record.get('full_n_nets'))} x {_text(record.get('full_epochs'))}",
        "budget_vs_paper": "; ".join(budget_differences(record)) or "paper's",
    }


def budget_differences(record: dict[str, Any]) -> list[str]:
    """How a record's budget differs from the paper's (:data:`~galaxy_distillation.presets.PAPER_BUDGET`);
    empty when it matches. A value the record lacks (an older record) counts as different."""
    out = []
    if (record.get("data_label") or record.get("dataset")) == "mock":
        out.append(MOCK_NOTE)
    its, stop = record.get("distill_iterations"), record.get("stop_reason")
    if its is None or (stop in (None, "max_iterations", "interrupted") and its < PAPER_BUDGET["iterations"]):
        out.append(f"{_text(its)} iterations ({_text(stop)})")
    n, epochs = record.get("n_experts"), record.get("expert_train_epochs")
    if n is None or epochs is None or n < PAPER_BUDGET["n_experts"] or epochs < PAPER_BUDGET["expert_epochs"]:
        out.append(f"experts {_text(n)} x {_text(epochs)}")
    nets, ev_epochs = record.get("n_nets"), record.get("epochs")
    if (nets, ev_epochs) != (PAPER_BUDGET["eval_nets"], PAPER_BUDGET["eval_epochs"]):
        out.append(f"evaluation {_text(nets)} x {_text(ev_epochs)}")
    return out


def result_tags(results: dict[str, Any]) -> dict[str, Any]:
    """The MLflow ``result.*`` tags of an evaluated variant: what makes its numbers comparable
    (the runs table's columns: data, method, IPC, init, iterations and stop reason, experts,
    evaluation protocol, how its budget differs from the paper's)."""
    budget = budget_columns(results)
    return {
        "result.variant": results.get("variant"), "result.data": budget.get("data"),
        "result.method": budget.get("method"), "result.ipc": budget.get("ipc"), "result.init": budget.get("init"),
        "result.training_set": budget.get("training_set"),
        "result.iterations": f"{budget.get('iterations')} ({budget.get('stop_reason')})",
        "result.experts": f"{budget.get('n_experts')} x {budget.get('expert_epochs')}",
        "result.eval_protocol": budget.get("eval_protocol"), "result.full_protocol": budget.get("full_protocol"),
        "result.budget_vs_paper": budget.get("budget_vs_paper"),
    }


def budgets_markdown(records: dict[str, dict[str, Any]]) -> list[str]:
    """A table of the budget of each named record (markdown lines)."""
    lines = ["| run | data | method | IPC | init | training set | iterations (stop) | experts (n x epochs) | "
             "evaluation (nets x epochs) | Full (nets x epochs) | vs the paper's budget |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, record in records.items():
        b = budget_columns(record)
        lines.append(f"| {name} | {_text(b['data'])} | {_text(b['method'])} | {_text(b['ipc'])} | {_text(b['init'])} | "
                     f"{b['training_set']} | {_text(b['iterations'])} ({_text(b['stop_reason'])}) | "
                     f"{_text(b['n_experts'])} x {_text(b['expert_epochs'])} | {b['eval_protocol']} | "
                     f"{b['full_protocol']} | {b['budget_vs_paper']} |")
    return lines


# ---------------------------------------------------------------------------- the table


def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.1f} ± {std or 0.0:.1f}"


def _entry(column: str, ipc: int, ours: tuple[float, float] | None, paper: tuple[float, float] | None
           ) -> dict[str, Any]:
    o_mean, o_std = ours if ours else (None, None)
    p_mean, p_std = paper if paper else (None, None)
    diff = None if (o_mean is None or p_mean is None) else o_mean - p_mean
    return {"ipc": ipc, "column": column, "ours_mean": o_mean, "ours_std": o_std,
            "paper_mean": p_mean, "paper_std": p_std, "difference": diff}


def _cell_text(e: dict[str, Any]) -> str:
    text = _fmt(e["ours_mean"], e["ours_std"])
    if e["ours_mean"] is not None and e.get("budget_vs_paper") not in (None, "paper's"):
        text += BUDGET_MARK
    if e["paper_mean"] is not None:
        diff = "" if e["difference"] is None else f", {e['difference']:+.1f}"
        text += f" (paper {_fmt(e['paper_mean'], e['paper_std'])}{diff})"
    return text


def _marked(e: dict[str, Any], record: dict[str, Any] | None, label: str) -> dict[str, Any]:
    """The entry with how its record's budget differs from the paper's (Full: only the data)."""
    if e["ours_mean"] is None:
        return {**e, "budget_vs_paper": None}
    if record is None:
        return {**e, "budget_vs_paper": MOCK_NOTE if label == "mock" else "paper's"}
    columns = budget_columns({**record, "data_label": label})
    return {**e, **{k: columns[k] for k in _ROW_BUDGET}, "budget_vs_paper": columns["budget_vs_paper"]}


#: The budget columns of each flat table row (beside ``table, dataset, data, ipc, column`` and the numbers).
_ROW_BUDGET = ("method", "init", "training_set", "iterations", "stop_reason", "n_experts", "expert_epochs",
               "eval_protocol")
ROW_COLUMNS = ("table", "dataset", "data", "ipc", "column", "ours_mean", "ours_std", "paper_mean", "paper_std",
               "difference", *_ROW_BUDGET, "budget_vs_paper")


def _acc(record: dict[str, Any] | None, prefix: str) -> tuple[float, float] | None:
    if not record or record.get(f"{prefix}_acc_mean") is None:
        return None
    return float(record[f"{prefix}_acc_mean"]), float(record[f"{prefix}_acc_std"])


def results_table(table: str, dataset: str, evaluations: dict[str, dict[str, Any] | None],
                  full: dict[str, dict[str, Any] | None], caption: str, label: str | None = None
                  ) -> tuple[str, list[dict[str, Any]]]:
    """The paper's layout with its numbers beside ours and the difference (ours - paper); a
    number whose budget differs from the paper's is marked (:data:`BUDGET_MARK`), and a table of
    every cell's budget follows.

    Args:
        table: ``table``, ``table1`` or ``table2``.
        dataset: the run's dataset.
        evaluations: cell name -> its evaluation record (``None``: cell not in this table).
        full: training-set flag -> the Full baseline record (``full_acc_mean``/``_std``).
        caption: protocol notes printed under the table.
        label: what the data is (``mock`` for the built-in mock sky; default ``dataset``).

    Returns:
        Markdown, and one flat row per table entry (``ipc, column, ours_mean, ours_std,
        paper_mean, paper_std, difference, budget_vs_paper`` plus ``table``, ``dataset`` and ``data``).
    """
    label = label or dataset
    entries: list[dict[str, Any]] = []
    lines = [f"# {table}: {label}", ""]
    if label == "mock":
        lines += [f"Data: the built-in {MOCK_NOTE}; the paper's numbers beside ours are on real GZ2.", ""]
    ipcs = sorted({c.ipc for c in cells(table) if evaluations.get(c.name) is not None})
    if table == "table2":
        cols = ("random", "plain_real", "plain_noise", "plain_full", "aug_real", "aug_noise", "aug_full")
        name = "Mock" if label == "mock" else "GZ2"
        heads = ("Random", f"{name} real init", f"{name} noise init", f"{name} full", f"{name}-Aug real",
                 f"{name}-Aug noise", f"{name}-Aug full")
        lines += ["| IPC | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
        for ipc in ipcs:
            paper = PAPER_TABLE2.get(ipc, {}) if dataset == "gz2" else {}
            row = []
            for col in cols:
                flag, _, kind = col.partition("_")
                if col == "random":
                    record = evaluations.get(f"stm_ipc{ipc}_real_plain")
                    ours = _acc(record, "random")
                elif kind == "full":
                    record, ours = None, _acc(full.get(flag), "full") if ipc == ipcs[0] else None
                else:
                    record = evaluations.get(f"stm_ipc{ipc}_{kind}_{flag}")
                    ours = _acc(record, "distilled")
                e = _marked(_entry(col, ipc, ours, paper.get(col)), record, label)
                if ours is not None or e["paper_mean"] is not None:
                    entries.append(e)
                row.append(_cell_text(e) if (ours or e["paper_mean"] is not None) else "")
            lines.append(f"| {ipc} | " + " | ".join(row) + " |")
    else:
        lines += ["| dataset | IPC | Random | MTT | STM | Full |", "|---|---|---|---|---|---|"]
        for ipc in ipcs:
            paper = PAPER_TABLE1.get((dataset, ipc), {})
            stm, mtt = evaluations.get(f"stm_ipc{ipc}_real_plain"), evaluations.get(f"mtt_ipc{ipc}_real_plain")
            values = {"random": _acc(stm or mtt, "random"), "mtt": _acc(mtt, "distilled"),
                      "stm": _acc(stm, "distilled"),
                      "full": _acc(full.get("plain"), "full") if ipc == ipcs[0] else None}
            records = {"random": stm or mtt, "mtt": mtt, "stm": stm, "full": None}
            row = []
            for col in ("random", "mtt", "stm", "full"):
                e = _marked(_entry(col, ipc, values[col], paper.get(col)), records[col], label)
                if values[col] is not None or e["paper_mean"] is not None:
                    entries.append(e)
                row.append(_cell_text(e) if (values[col] or e["paper_mean"] is not None) else "")
            lines.append(f"| {label} | {ipc} | " + " | ".join(row) + " |")
    lines += ["", "Test accuracy (%), mean ± std over the evaluation networks; in brackets the paper's number "
              "and ours minus the paper's.", ""]
    if any(e.get("budget_vs_paper") not in (None, "paper's") for e in entries):
        lines += [BUDGET_NOTE, ""]
    done = {f"{label}_{c.name}": {**evaluations[c.name], "data_label": label} for c in cells(table)
            if evaluations.get(c.name) is not None}
    if done:
        lines += ["Budgets:", "", *budgets_markdown(done), ""]
    lines += [caption, ""]
    for e in entries:
        e.update(table=table, dataset=dataset, data=label)
    return "\n".join(lines), entries


def caption(evaluation: EvaluationParams, records: list[dict[str, Any]]) -> str:
    """The protocol under the table: evaluation, Random, Full, presets, stop reasons, selection."""
    rule = evaluation.random_lr if evaluation.random_lr is not None else "learned"
    random = "the distilled set's learned step size" if rule == "learned" else f"a fixed step size {float(rule):g}"
    stops = sorted({str(r.get("stop_reason")) for r in records})
    selections = sorted({str(r.get("selection")) for r in records})
    sources = sorted({(r.get("preset") or {}).get("source", "none (the env's values)") for r in records})
    return (
        f"Distilled: {evaluation.n_nets} fresh nets x {evaluation.epochs} epochs at the learned step size "
        f"(SGD momentum {evaluation.momentum:g}, weight decay {evaluation.weight_decay:g}, lr x0.1 at "
        f"{evaluation.lr_decay_at:g} of the epochs, DSA). Random: a fresh random real subset of the same IPC per "
        f"net, trained the same way with {random}. Full: the whole training set, {evaluation.full_n_nets} nets x "
        f"{evaluation.full_epochs} epochs at lr {evaluation.full_lr:g} (the project's protocol; neither paper nor "
        f"code states one). Presets: {'; '.join(sources) or '-'}. Stop reasons: {', '.join(stops) or '-'}. "
        f"Image selection: {', '.join(selections) or '-'}."
    )
