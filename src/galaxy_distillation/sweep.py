"""The paper's tables as sweeps of cells: which cells each table has, and the results table.

Pure functions (no Kedro, no torch): :mod:`galaxy_distillation.pipelines._sweep` wires one
namespaced Kedro pipeline per :class:`Cell` from them.

* ``table``  (CPU default, any dataset, e.g. an image folder): MTT and STM at IPC 1 and 10,
  real init, plus Random and Full; Table 1's layout.
* ``table1`` (``--env cifar10``): MTT and STM at IPC 1, 10, 50 (CIFAR-100: 1 and 10).
* ``table2`` (``--env paper``, GZ2): STM at IPC 1 and 10, real and noise init, plain and
  rotation-augmented training set, plus Random and Full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from galaxy_distillation.presets import PAPER_TABLE1, PAPER_TABLE2

__all__ = ["Cell", "TABLES", "cells", "groups", "applies", "results_table"]


@dataclass(frozen=True)
class Cell:
    """One distillation of a table: its namespace is :attr:`name` (the variant without the dataset)."""

    method: str
    ipc: int
    init: str
    augmented: bool

    @property
    def flag(self) -> str:
        return "aug" if self.augmented else "plain"

    @property
    def name(self) -> str:
        return f"{self.method}_ipc{self.ipc}_{self.init}_{self.flag}"

    def variant(self, dataset: str) -> str:
        """The single-run variant name (``kedro run --params ...``): same files, same checkpoints."""
        return f"{dataset}_{self.name}"


def _grid(methods: tuple[str, ...], ipcs: tuple[int, ...], inits: tuple[str, ...], augs: tuple[bool, ...]
          ) -> tuple[Cell, ...]:
    return tuple(Cell(m, i, init, a) for a in augs for i in ipcs for init in inits for m in methods)


TABLES: dict[str, tuple[Cell, ...]] = {
    "table": _grid(("mtt", "stm"), (1, 10), ("real",), (False,)),
    "table1": _grid(("mtt", "stm"), (1, 10, 50), ("real",), (False,)),
    "table2": _grid(("stm",), (1, 10), ("real", "noise"), (False, True)),
}
# Cells a table has for some datasets only (Table 1 has no IPC 50 row for CIFAR-100).
_NOT_IN_TABLE = {("table1", "cifar100", 50)}


def cells(table: str) -> tuple[Cell, ...]:
    """The cells of ``table``.

    Raises:
        KeyError: unknown table.
    """
    if table not in TABLES:
        raise KeyError(f"unknown table {table!r}; one of {sorted(TABLES)}")
    return TABLES[table]


def groups(table: str) -> tuple[str, ...]:
    """Training-set flags (``plain``/``aug``) of a table: one expert bank and one Full baseline each."""
    return tuple(dict.fromkeys(c.flag for c in cells(table)))


def applies(table: str, dataset: str, cell: Cell, sweep: dict[str, Any] | None = None) -> bool:
    """Whether ``cell`` belongs to ``table`` for ``dataset`` and is selected by the ``sweep``
    parameters (``ipcs``/``methods``/``inits``: null = all); the others are skipped."""
    sweep = sweep or {}
    for key, value in (("ipcs", cell.ipc), ("methods", cell.method), ("inits", cell.init)):
        if sweep.get(key) is not None and value not in sweep[key]:
            return False
    return (table, dataset, cell.ipc) not in _NOT_IN_TABLE


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
    if e["paper_mean"] is not None:
        diff = "" if e["difference"] is None else f", {e['difference']:+.1f}"
        text += f" (paper {_fmt(e['paper_mean'], e['paper_std'])}{diff})"
    return text


def _acc(record: dict[str, Any] | None, prefix: str) -> tuple[float, float] | None:
    if not record or record.get(f"{prefix}_acc_mean") is None:
        return None
    return float(record[f"{prefix}_acc_mean"]), float(record[f"{prefix}_acc_std"])


def results_table(table: str, dataset: str, evaluations: dict[str, dict[str, Any] | None],
                  full: dict[str, dict[str, Any] | None], caption: str) -> tuple[str, list[dict[str, Any]]]:
    """The paper's layout with its numbers beside ours and the difference (ours - paper).

    Args:
        table: ``table``, ``table1`` or ``table2``.
        dataset: the run's dataset.
        evaluations: cell name -> its evaluation record (``None``: cell not in this table).
        full: training-set flag -> the Full baseline record (``full_acc_mean``/``_std``).
        caption: protocol notes printed under the table.

    Returns:
        Markdown, and one flat row per table entry (``ipc, column, ours_mean, ours_std,
        paper_mean, paper_std, difference`` plus ``table`` and ``dataset``).
    """
    entries: list[dict[str, Any]] = []
    lines = [f"# {table}: {dataset}", ""]
    ipcs = sorted({c.ipc for c in cells(table) if evaluations.get(c.name) is not None})
    if table == "table2":
        cols = ("random", "plain_real", "plain_noise", "plain_full", "aug_real", "aug_noise", "aug_full")
        heads = ("Random", "GZ2 real init", "GZ2 noise init", "GZ2 full", "GZ2-Aug real", "GZ2-Aug noise",
                 "GZ2-Aug full")
        lines += ["| IPC | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
        for ipc in ipcs:
            paper = PAPER_TABLE2.get(ipc, {}) if dataset == "gz2" else {}
            row = []
            for col in cols:
                flag, _, kind = col.partition("_")
                if col == "random":
                    ours = _acc(evaluations.get(f"stm_ipc{ipc}_real_plain"), "random")
                elif kind == "full":
                    ours = _acc(full.get(flag), "full") if ipc == ipcs[0] else None
                else:
                    ours = _acc(evaluations.get(f"stm_ipc{ipc}_{kind}_{flag}"), "distilled")
                e = _entry(col, ipc, ours, paper.get(col))
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
            row = []
            for col in ("random", "mtt", "stm", "full"):
                e = _entry(col, ipc, values[col], paper.get(col))
                if values[col] is not None or e["paper_mean"] is not None:
                    entries.append(e)
                row.append(_cell_text(e) if (values[col] or e["paper_mean"] is not None) else "")
            lines.append(f"| {dataset} | {ipc} | " + " | ".join(row) + " |")
    lines += ["", "Test accuracy (%), mean ± std over the evaluation networks; in brackets the paper's number "
              "and ours minus the paper's.", "", caption, ""]
    for e in entries:
        e.update(table=table, dataset=dataset)
    return "\n".join(lines), entries
