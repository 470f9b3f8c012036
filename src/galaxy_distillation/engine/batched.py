"""Several distillations advanced together: one program per iteration for the runs that share a shape.

:class:`BatchedDistiller` drives K :class:`~.matching.Distiller` objects (e.g. seeds, sweep cells of
the same training set and IPC, init variants). Each iteration it groups the runs that still have
iterations left by their current shape (network, synthetic-set shape, dtype, device, ``syn_steps``,
``batch_syn``, DSA, memory mode) and runs each group's STM validation passes, differentiable
unrolls (:func:`.student.unroll_students`: the K students under ``torch.func.vmap``, both memory
modes) and backward pass as ONE program, with one host read for the group. Everything else is each
run's own and unchanged: its draws (its own per-iteration generators, :mod:`.draws`), its expert
and start epoch, its optimisers, STM schedule, rejection rule, quick evaluation, callback and
checkpoints. The K matching losses are summed for the backward pass; the students never mix, so
each run's gradient is the one it gets alone, and every run's numbers equal running it alone (to
float rounding: batched kernels sum in another order; tests/engine/test_batched.py, float64).
Runs with batch-norm (running buffers are not vmap-safe) or ``memory_mode: graphed`` (each run
replays its own captured step programs) step one at a time, and so does a run
alone in its group (the plain path: vmap at K = 1 only adds ops) unless ``single_alone=False``.

A run that diverges (``DistillationDivergedError`` in its :meth:`~.matching.Distiller.conclude`,
after ``max_bad_steps`` consecutive non-finite steps) ends alone, as it would on its own: no
record and no checkpoint for that iteration, nothing more of it is computed. The runs after it
in the group still conclude that iteration, and every other run goes on to its own end.
:meth:`BatchedDistiller.run` then raises ``DistillationDivergedError`` naming the diverged runs;
the others' results are in :attr:`BatchedDistiller.results` (``None`` for a diverged run) and
the errors in :attr:`BatchedDistiller.errors`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from .distill_config import DistillationDivergedError, DistillConfigError, DistillResult, IterationRecord
from .dsa import DSAParams
from .host_reads import decide, read_scalars
from .matching import _SLOT_TRAIN, _SLOT_VAL, Distiller
from .networks import has_batchnorm
from .student import matching_losses, unroll_students

__all__ = ["BatchedDistiller"]


def shape_key(d: Distiller) -> tuple:
    """What runs must share to be computed as one program (resolves ``memory_mode: auto`` first)."""
    if has_batchnorm(d.model.module) or d.resolved_memory_mode() == "graphed":  # graphed: its own step programs
        return ("alone", id(d))
    cfg = d.config
    return (json.dumps(d.arch, sort_keys=True, default=repr), d.num_classes, tuple(d.images.shape), str(d.dtype),
            str(d.device), cfg.syn_steps, cfg.batch_syn, cfg.dsa_strategy, repr(d.dsa_params or DSAParams()),
            d.resolved_memory_mode())


class BatchedDistiller:
    """Advance K distillations together (see the module docstring); ``run`` returns K results.

    Args:
        distillers: the runs (each built as for a run alone, with its own checkpoint folder,
            callback and quick-evaluation hook).
        single_alone: a group of one run takes the plain path (``Distiller.step``); ``False``
            runs it as a batched program of one (for measurements and tests).
    """

    def __init__(self, distillers: Sequence[Distiller], single_alone: bool = True) -> None:
        if not distillers:
            raise DistillConfigError("BatchedDistiller needs at least one Distiller")
        if len({id(d) for d in distillers}) != len(distillers):
            raise DistillConfigError("BatchedDistiller got the same Distiller twice")
        self.runs = list(distillers)
        self.single_alone = bool(single_alone)
        #: The runs that diverged (their index in ``runs``) and their ``DistillationDivergedError``.
        self.errors: dict[int, DistillationDivergedError] = {}
        #: After :meth:`run`: each run's result, ``None`` for a diverged run.
        self.results: list[DistillResult | None] = []

    def live(self, d: Distiller) -> bool:
        """Whether run ``d`` has iterations left and has not diverged."""
        return d.active and self.runs.index(d) not in self.errors

    def groups(self) -> list[list[Distiller]]:
        """The runs with iterations left (diverged ones excluded), grouped by :func:`shape_key` (in the runs' order)."""
        out: dict[tuple, list[Distiller]] = {}
        for d in self.runs:
            if self.live(d):
                out.setdefault(shape_key(d), []).append(d)
        return list(out.values())

    def _alone(self, d: Distiller, call: Callable[..., IterationRecord], *args: object) -> IterationRecord | None:
        """``call(*args)`` for run ``d`` (its step or conclude); a divergence ends that run only (``None``)."""
        try:
            return call(*args)
        except DistillationDivergedError as exc:
            self.errors[self.runs.index(d)] = exc
            return None

    def step(self) -> list[IterationRecord | None]:
        """One iteration of every run with iterations left (``None`` for the others and for a run that
        diverged in it: see :attr:`errors`), group by group."""
        records: dict[int, IterationRecord | None] = {}
        for group in self.groups():
            alone = shape_key(group[0])[0] == "alone" or (self.single_alone and len(group) == 1)
            recs = [self._alone(d, d.step) for d in group] if alone else _step_group(group, self._alone)
            records.update({id(d): r for d, r in zip(group, recs)})
        return [records.get(id(d)) for d in self.runs]

    def run(self, progress: bool = True, stop_after: int | None = None,
            on_mismatch: str = "raise") -> list[DistillResult]:
        """:meth:`.Distiller.run` for every run at once: each resumes from its checkpoint, iterates until
        its own stop rule or budget (at most ``stop_after`` iterations in this call), saves its
        checkpoints and returns its :class:`DistillResult`, in the order of the runs.

        Raises:
            DistillationDivergedError: after every other run finished (results saved, in
                :attr:`results`), when some runs diverged; the message names each (its index and seed).
        """
        for d in self.runs:
            d.resume(on_mismatch)
        finished = [d.stop_reason is not None for d in self.runs]
        total = sum(max(0, d.config.iterations - d.iteration) for d in self.runs if d.active)
        bar = tqdm(total=total, disable=not progress, desc=f"distil x{len(self.runs)}")
        done = 0
        try:
            while any(self.live(d) for d in self.runs):
                if stop_after is not None and done >= stop_after:
                    break
                recs = self.step()
                done += 1
                for d, rec in zip(self.runs, recs):
                    if rec is not None:
                        d.after_iteration(rec)
                bar.update(sum(r is not None for r in recs))
        finally:
            bar.close()
        self.results = [None if k in self.errors else d.result() if skip else d.finish()
                        for k, (d, skip) in enumerate(zip(self.runs, finished))]
        if self.errors:
            raise DistillationDivergedError("; ".join(
                f"run {k} (seed {self.runs[k].config.seed}) of {len(self.runs)} diverged: {exc}"
                for k, exc in sorted(self.errors.items())))
        return list(self.results)


def _step_group(group: list[Distiller], conclude: Callable[..., IterationRecord | None]) -> list[IterationRecord | None]:
    """One iteration of runs that share a :func:`shape_key`, as one program (their records). Each run's
    end of iteration goes through ``conclude(run, run.conclude, *args)`` (:meth:`BatchedDistiller._alone`),
    every run in turn, whatever an earlier run's ended in."""
    t0 = time.perf_counter()
    first = group[0]
    cfg, model, mode = first.config, first.model, first.resolved_memory_mode()
    T_now = [d.T_now for d in group]
    prepared = [d.prepare() for d in group]  # (iteration, expert, start): each run's own choice and draws

    vals: list[torch.Tensor | None] = [None] * len(group)
    stm = [k for k, d in enumerate(group) if d.config.method == "stm"]
    if stm:  # STM validation: expert[T] -> expert[T+1] without a graph, before the image update
        trajs = [group[k]._expert(prepared[k][1]) for k in stm]
        Ts = [group[k].schedule.T for k in stm]
        start = torch.stack([t[T] for t, T in zip(trajs, Ts)])
        theta_n = unroll_students(
            model, start, torch.stack([group[k].images.detach() for k in stm]),
            torch.stack([group[k].labels for k in stm]), torch.stack([group[k].step_size().detach() for k in stm]),
            [group[k]._seeds(prepared[k][0], _SLOT_VAL) for k in stm], cfg.dsa_strategy, first.dsa_params,
            cfg.batch_syn, create_graph=False)
        with torch.no_grad():
            v = matching_losses(theta_n, start, torch.stack([t[T + 1] for t, T in zip(trajs, Ts)]))
        for j, k in enumerate(stm):
            vals[k] = v[j]

    for d in group:
        d.zero_grads()
    alphas = [d.step_size().detach().clone() for d in group]
    trajs = [d._expert(e) for d, (_, e, _) in zip(group, prepared)]
    starts = torch.stack([t[s] for t, (_, _, s) in zip(trajs, prepared)])
    targets = torch.stack([t[s + d.config.effective_expert_epochs] for t, d, (_, _, s) in zip(trajs, group, prepared)])
    theta_n = unroll_students(
        model, starts, torch.stack([d.images for d in group]), torch.stack([d.labels for d in group]),
        torch.stack([d.step_size() for d in group]), [d._seeds(p[0], _SLOT_TRAIN) for d, p in zip(group, prepared)],
        cfg.dsa_strategy, first.dsa_params, cfg.batch_syn, memory_mode=mode)
    losses = matching_losses(theta_n, starts, targets)
    reads = _backward_one_read(losses, alphas, vals, group)
    seconds = (time.perf_counter() - t0) / len(group)
    return [conclude(d, d.conclude, p[0], p[1], p[2], T, *r, seconds) for d, p, T, r in zip(group, prepared, T_now, reads)]


def _backward_one_read(losses: torch.Tensor, alphas: list[torch.Tensor], vals: list[torch.Tensor | None],
                       group: list[Distiller]) -> list[tuple[bool, float, float, float | None]]:
    """:func:`.host_reads.backward_one_read` for a group: one backward pass of the summed losses into every
    run's images and step size, and every run's scalars read in ONE device-to-host transfer."""
    losses.sum().backward(inputs=[d.images for d in group] + [d.lr_param for d in group])
    rows = [torch.stack(read_scalars(losses[k], alphas[k], vals[k], d.images, d.lr_param, pad=True))
            for k, d in enumerate(group)]
    host = torch.stack(rows).tolist()  # the group's one device-to-host sync
    return [decide(h, v is not None) for h, v in zip(host, vals)]
