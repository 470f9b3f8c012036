"""Which cells each table has: the one source of the sweeps' cells (:data:`TABLES`).

Pure functions (no Kedro, no torch).

* ``table``  (CPU default, any dataset, e.g. an image folder): MTT and STM at IPC 1 and 10,
  real init, plus Random and Full; Table 1's layout.
* ``table1`` (``--env cifar10``): MTT and STM at IPC 1, 10, 50 (CIFAR-100: 1 and 10).
* ``table2`` (``--env paper``, GZ2): STM at IPC 1 and 10, real and noise init, plain and
  rotation-augmented training set, plus Random and Full.

A cell reaches its nodes as a parameter, ``params:sweep_cells.<table>.<cell>`` (its
:func:`cell_params`); ``sweep_cells`` in ``conf/base/parameters_sweep.yml`` is
:func:`sweep_cells` itself (the ``gd.sweep_cells`` resolver), not a copy of it.

:func:`shape_groups`: the cells of a table whose distillations share a shape (same method and
IPC: the same synthetic-set shape and method preset, whatever their init or training set), the
ones ``sweep.batched`` runs as one batched program (:mod:`.batched`); ``sweep_groups`` in
``parameters_sweep.yml`` is :func:`sweep_groups` (the ``gd.sweep_groups`` resolver).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Cell", "TABLES", "cells", "groups", "applies", "cell_params", "cell_of", "cell_named", "sweep_cells",
           "shape_groups", "sweep_groups"]


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


def shape_groups(table: str) -> dict[str, tuple[Cell, ...]]:
    """The cells of ``table`` that share a method and an IPC, by group name (``stm_ipc1``), in
    :func:`cells` order; only groups of more than one cell (Table 2: ``stm_ipc1`` and ``stm_ipc10``,
    4 cells each; ``table`` and ``table1`` have none). The first cell of a group is its leader:
    the group's node is in the leader's namespace."""
    out: dict[str, list[Cell]] = {}
    for c in cells(table):
        out.setdefault(f"{c.method}_ipc{c.ipc}", []).append(c)
    return {name: tuple(group) for name, group in out.items() if len(group) > 1}


def applies(table: str, dataset: str, cell: Cell, sweep: dict[str, Any] | None = None) -> bool:
    """Whether ``cell`` belongs to ``table`` for ``dataset`` and is selected by the ``sweep``
    parameters (``ipcs``/``methods``/``inits``: null = all); the others are skipped."""
    sweep = sweep or {}
    for key, value in (("ipcs", cell.ipc), ("methods", cell.method), ("inits", cell.init)):
        if sweep.get(key) is not None and value not in sweep[key]:
            return False
    return (table, dataset, cell.ipc) not in _NOT_IN_TABLE


def cell_params(table: str, cell: Cell) -> dict[str, Any]:
    """A cell of ``table`` as its nodes receive it (the parameter ``sweep_cells.<table>.<cell>``)."""
    return {"table": table, "method": cell.method, "ipc": cell.ipc, "init": cell.init, "augmented": cell.augmented}


def sweep_cells() -> dict[str, dict[str, dict[str, Any]]]:
    """Every table's cells by name, as parameters (``sweep_cells`` in ``parameters_sweep.yml``)."""
    return {table: {c.name: cell_params(table, c) for c in table_cells} for table, table_cells in TABLES.items()}


def sweep_groups() -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every table's :func:`shape_groups` as parameters (``sweep_groups`` in ``parameters_sweep.yml``):
    table -> group name -> its cells' :func:`cell_params`."""
    return {table: {name: [cell_params(table, c) for c in group] for name, group in shape_groups(table).items()}
            for table in TABLES}


def cell_of(params: dict[str, Any]) -> tuple[str, Cell]:
    """The table and the cell a node was given (:func:`cell_params`).

    Raises:
        KeyError: one line, when the cell is not one of :data:`TABLES` (the only source of cells).
    """
    table = str(params.get("table"))
    cell = Cell(str(params.get("method")), params.get("ipc"), str(params.get("init")), params.get("augmented"))
    if table not in TABLES or cell not in TABLES[table]:
        raise KeyError(f"sweep cell {dict(params)!r} is not a cell of {sorted(TABLES)} (pipelines/sweep/cells.py)")
    return table, cell


def cell_named(name: str | None) -> Cell | None:
    """The cell whose namespace is ``name`` (``mtt_ipc10_real_plain``), in any table; else ``None``."""
    return next((c for table_cells in TABLES.values() for c in table_cells if c.name == name), None)
