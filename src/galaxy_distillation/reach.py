"""``teacher.epochs: reach``: train the experts only as far as this run's distillation can read them.

Resolved before the first node (:func:`galaxy_distillation.preflight.checks.check_run`), with the
``preset`` values of ``distill`` filled per cell (:meth:`DistillParams.resolved`), to the highest
expert epoch (trajectory row) a distillation of the run reads:

- MTT: start rows ``t`` in ``[0, max_start_epoch)``, target row ``t + expert_epochs``, so
  ``max_start_epoch - 1 + expert_epochs``;
- STM: the pool ``T <= min(max_start_epoch, E - 1)`` (``E`` = expert epochs), start rows
  ``0 .. T-1`` with target ``t + 1``, and the validation reads rows ``T`` and ``T + 1``, so
  ``max_start_epoch + 1``: the largest ``E`` at which the experts do not cap ``T`` (the paper
  schedule's cap "the expert length", ``max_start_epoch`` 50, gives 51; docs/method.md).

A sweep takes the largest over its cells (one ``teacher`` group for every training set); a run
without a distillation step (``--pipelines=teacher``) takes the run's own ``method`` and ``ipc``,
so a later ``--pipelines=distill`` of the same parameters finds the same bank. The resolved
number replaces the word in the run's parameters and in the catalog's ``params:teacher``; raising
it later grows the stored experts (:func:`galaxy_distillation.engine.experts.grow_experts`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: The word of ``teacher.epochs`` resolved here.
REACH = "reach"


def epochs_read(method: str, values: dict[str, Any]) -> int:
    """The highest expert epoch one distillation of ``method`` with the resolved ``distill``
    ``values`` reads (see the module)."""
    start = int(values["max_start_epoch"])
    if method == "mtt":
        return start - 1 + int(values["expert_epochs"])
    return start + 1


def reach_epochs(params: dict[str, Any], cells: list[tuple[str, int]]) -> tuple[int, dict[tuple[str, int], int]]:
    """``teacher.epochs: reach`` for the distillations ``cells`` ((method, ipc); empty: the run's own).

    Returns:
        The largest epoch read, and the epoch each cell reads.

    Raises:
        ParameterError: a ``preset`` value without a published setting (as the parameter validation).
    """
    from galaxy_distillation.params import DistillParams

    distill = params.get("distill")
    distill = distill if isinstance(distill, DistillParams) else DistillParams(**_plain(distill))
    wanted = cells or [(str(params.get("method", "stm")), int(params.get("ipc", 1)))]
    per_cell = {}
    for method, ipc in wanted:
        values, _ = distill.resolved(str(params.get("dataset", "")), method, int(ipc))
        per_cell[(method, int(ipc))] = epochs_read(method, values)
    return max(per_cell.values()), per_cell


def resolve_reach(params: dict[str, Any], cells: list[tuple[str, int]] | Callable[[], list[tuple[str, int]]],
                  catalog: Any = None) -> dict[str, Any]:
    """``params`` with ``teacher.epochs: reach`` replaced by :func:`reach_epochs` (logged in one line),
    and the same ``params:teacher`` (and ``params:teacher.epochs``) in ``catalog``; ``params`` itself
    when ``teacher.epochs`` is a number. ``cells``: a list, or a function called only for ``reach``."""
    given = params.get("teacher")
    if _plain(given).get("epochs") != REACH:
        return params
    epochs, per_cell = reach_epochs(params, cells() if callable(cells) else cells)
    shown = ", ".join(f"{m} ipc {i}: {e}" for (m, i), e in sorted(per_cell.items()))
    log.info("teacher.epochs reach -> %d (the highest expert epoch distillation reads; %s)", epochs, shown)
    if catalog is not None:
        if "params:teacher" in catalog:
            catalog.save("params:teacher", _with_epochs(catalog.load("params:teacher"), epochs))
        if "params:teacher.epochs" in catalog:
            catalog.save("params:teacher.epochs", epochs)
    return {**params, "teacher": _with_epochs(given, epochs)}


def _with_epochs(teacher: Any, epochs: int) -> Any:
    """``teacher`` (Kedro's typed ``TeacherParams`` or a plain dict) with ``epochs`` set, of the same kind."""
    if hasattr(teacher, "model_copy"):
        return teacher.model_copy(update={"epochs": epochs})
    return {**_plain(teacher), "epochs": epochs}


def _plain(value: Any) -> dict[str, Any]:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return dict(value or {})
