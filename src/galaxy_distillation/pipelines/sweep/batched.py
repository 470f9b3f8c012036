"""``sweep.batched``: the cells of a sweep that share a shape distil as ONE batched program.

The design, chosen to keep the Kedro pipeline static and the default run as it was:

* **Static groups.** :func:`~.cells.shape_groups` names, from the code alone, the cells of a
  table with the same method and IPC (Table 2: ``stm_ipc1`` and ``stm_ipc10``, each real/noise
  init x plain/aug training set: 4 cells). Only these can share a shape (the same synthetic-set
  shape and method preset); ``table`` and ``table1`` have no group of more than one cell, so their
  pipelines are unchanged.
* **One node per group, always wired.** :func:`distill_batched` (node ``<leader>.distill_batched``
  in the namespace of the group's first cell, so ``preflight.checks`` counts the group's method and IPC,
  never a run's own) reads the group's training sets, expert banks and each cell's earlier result,
  and gives ``<leader>.batched_distillations`` to each of the group's cell ``distill`` nodes (their
  last input). The pipeline's structure never depends on ``sweep.batched``; its value is read when
  the node runs.
* **Default (``sweep.batched: false``).** The node returns ``{}`` at once and every cell's
  ``distill`` node does what it did before, with the same numbers. The only change: a group's cells
  start once all of the group's training sets have their experts (the node waits for both
  teachers), which under ``compute.backend: ray`` may start a plain cell a little later.
* **Batched.** The node decides per cell as the cell's own node does
  (:func:`~.nodes.cell_to_distil`: not in the table, or finished with the same result key ->
  nothing to compute). When at least two cells are left, it runs them as ONE task
  (:func:`galaxy_distillation.compute.run_one`: here, or one Ray task; the training sets go as
  ``shared`` arguments, one object-store copy each): :func:`distill_group_task` builds each cell's
  :class:`~galaxy_distillation.engine.Distiller` exactly as a single run does
  (:func:`~galaxy_distillation.pipelines.distill.nodes.start_distillation`: its own checkpoint
  folder, quick evaluations, seeds) and advances them with one
  :class:`~galaxy_distillation.engine.BatchedDistiller`; each cell's outputs are made as a single
  run makes them (:func:`~galaxy_distillation.pipelines.distill.nodes.finish_distillation`) and carry
  its result key. A cell's ``distill`` node returns its entry; a cell the node left (finished, not
  in the table, or alone) is handled by its own node as before. Evaluation, the MLflow child run,
  the files and the table stay per cell.
* **Numbers.** The engine's batched step equals each run alone to float rounding
  (tests/engine/test_batched.py); the batched sweep equals the unbatched one to float tolerance
  (tests/pipelines/sweep/test_sweep_batched.py). A checkpoint written by either resumes in the other.
* **Stopping.** On a stop request every cell of the group saves its checkpoint at the iteration it
  is in before :class:`~galaxy_distillation.compute.Stopped` ends the task (:class:`GroupStop`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from galaxy_distillation.compute import Stopped, run_one, stop_requested
from galaxy_distillation.engine import BatchedDistiller, Distiller, IterationRecord
from galaxy_distillation.engine.data import pick_device
from galaxy_distillation.engine.resources import ResourceEstimate, check_fits
from galaxy_distillation.names import source_name
from galaxy_distillation.params import (
    ArchParams,
    ComputeParams,
    DistillParams,
    EvaluationParams,
    SweepParams,
    TeacherParams,
)
from galaxy_distillation.pipelines.distill.nodes import distill_bytes, finish_distillation, start_distillation
from galaxy_distillation.pipelines.sweep.cells import Cell, cell_of
from galaxy_distillation.pipelines.sweep.nodes import _in_task, absolute_checkpoints, cell_to_distil

log = logging.getLogger(__name__)

__all__ = ["distill_batched", "distill_group_task", "GroupRun", "GroupStop"]


@dataclass(frozen=True)
class GroupRun:
    """One cell of a batched group as its task gets it: which of the task's training sets, its bank."""

    data_index: int
    experts: Any
    cell: Cell
    variant: str


class GroupStop:
    """The stop callback of a group's runs: on a stop request each run saves its checkpoint at the
    iteration it finished, and the last of them raises :class:`~galaxy_distillation.compute.Stopped`
    (the engine calls back the runs in order after each batched iteration), so a rerun resumes
    every cell where it stopped."""

    def __init__(self, distillers: list[Distiller], names: list[str]) -> None:
        self.distillers, self.names = distillers, names
        self.saved: set[int] = set()

    def callback(self, k: int) -> Any:
        def on_iteration(record: IterationRecord) -> None:
            if not stop_requested():
                return
            self.distillers[k].save_checkpoint()
            self.saved.add(k)
            if all(j in self.saved or not d.active for j, d in enumerate(self.distillers)):
                for j, d in enumerate(self.distillers):
                    if j not in self.saved:  # finished this iteration, before its callback
                        d.save_checkpoint()
                raise Stopped(f"batched distillation {', '.join(self.names)}: stopped after iteration "
                              f"{record.iteration + 1} of {self.names[k]}; each cell's checkpoint resumes it")
        return on_iteration


def distill_group_task(*args: Any) -> list[tuple[dict[str, Any], Any]]:
    """The cells of a group as ONE task (module level, so Ray can ship it): ``args`` are the
    training sets (the task's ``shared`` arguments), then ``runs`` (:class:`GroupRun`), ``distill``,
    ``evaluation``, ``model``, ``device``, ``progress`` and ``dataset``. Returns each run's
    distilled set and history, as a single run of it gives them (to float rounding)."""
    *datas, runs, distill, evaluation, model, device, progress, dataset = args
    configs = [distill.engine_config(r.cell.method, r.cell.ipc, r.cell.init, dataset=dataset) for r in runs]
    parts = [distill_bytes(datas[r.data_index], r.experts, c, r.cell.ipc) for r, c in zip(runs, configs)]
    check_fits(ResourceEstimate(*(sum(getattr(p, f) for p in parts) for f in ("synthetic", "unroll", "experts"))),
               pick_device(device))  # the group holds every run's unroll at once
    started = [start_distillation(datas[r.data_index], r.experts, distill, evaluation, model, r.cell.method,
                                  r.cell.ipc, r.cell.init, r.variant, device, dataset) for r in runs]
    stop = GroupStop([s.distiller for s in started], [r.cell.name for r in runs])
    for k, s in enumerate(started):
        s.distiller.callback = stop.callback(k)
    results = BatchedDistiller([s.distiller for s in started]).run(progress=progress, on_mismatch="restart")
    return [finish_distillation(s, result)[:2] for s, result in zip(started, results)]


def distill_batched(group: list[dict[str, Any]], distill: DistillParams, evaluation: EvaluationParams,
                    model: ArchParams, dataset: str, sweep: SweepParams, device: str, progress: bool,
                    compute: ComputeParams | None, teacher: TeacherParams, data_root: str, data_label: str | None,
                    *inputs: Any) -> dict[str, dict[str, Any]]:
    """The node of a shape group (see the module docstring): with ``sweep.batched``, the group's
    cells that are left to compute, distilled as one batched task.

    Args:
        group: the group's cells (``params:sweep_groups.<table>.<group>``, each :func:`~.cells.cell_params`).
        inputs: the prepared data and the expert bank of each training set of the group (in the
            order its cells first name them), then each cell's earlier distilled set and history.

    Returns:
        Cell name -> ``{"distilled", "history"}`` for each cell it distilled (``{}`` when
        ``sweep.batched`` is false or fewer than two cells are left).
    """
    cells = [cell_of(c)[1] for c in group]
    flags = list(dict.fromkeys(c.flag for c in cells))
    if len(inputs) != 2 * len(flags) + 2 * len(cells):
        raise ValueError(f"distill_batched: {len(inputs)} inputs for {len(flags)} training sets and {len(cells)} cells")
    data = {f: inputs[2 * i] for i, f in enumerate(flags)}
    banks = {f: inputs[2 * i + 1] for i, f in enumerate(flags)}
    previous = inputs[2 * len(flags):]
    if not sweep.batched:
        return {}
    todo = []
    for i, (params, cell) in enumerate(zip(group, cells)):
        found = cell_to_distil(data[cell.flag], banks[cell.flag], previous[2 * i], previous[2 * i + 1], params,
                               distill, evaluation, model, dataset, sweep, teacher)
        if found is not None:
            todo.append(found)
    if len(todo) < 2:
        log.info("batched group %s: %d cell(s) left to distil; each cell's own node does it", cells[0].name, len(todo))
        return {}
    used = list(dict.fromkeys(c.flag for c, _, _ in todo))
    label = data_label or source_name(dataset, data_root)
    runs = [GroupRun(used.index(c.flag), experts, c, c.variant(label)) for c, experts, _ in todo]
    compute = compute or ComputeParams()
    names = [c.name for c, _, _ in todo]
    log.info("batched group: %s as one program", ", ".join(names))
    out = run_one(distill_group_task,
                  (runs, absolute_checkpoints(distill), evaluation, model, device, _in_task(progress, compute), dataset),
                  compute.model_dump(), desc=f"cells {', '.join(names)} (batched)", progress=progress,
                  shared=tuple(data[f] for f in used))
    results = {}
    for (cell, _, key), (distilled, history) in zip(todo, out, strict=True):
        distilled["meta"]["cell_key"] = key
        results[cell.name] = {"distilled": distilled, "history": history}
    return results
