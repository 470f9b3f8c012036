"""``memory_mode: graphed``: the checkpoint formulation with each inner step as one replayable program.

A distillation iteration at the paper's shapes is launch-bound on a GPU: about 500 small kernels
per inner step (most from GroupNorm's double backward), some 42,000 per iteration, the GPU idle
most of the time. Every inner step has the same shapes, and since :mod:`.draws` all its random
numbers are on the device before the unroll starts, so each step can be captured once as a CUDA
graph and replayed: one launch instead of hundreds.

What is captured (one program per kind of step, :class:`StepPrograms`):

* ``forward``: one student step without a graph, ``theta - alpha * grad CE(theta; DSA(x[idx]))``
  (the STM validation pass and the forward pass of the checkpointed unroll);
* ``vjp``: that step's double-backward graph rebuilt from its saved ``theta_i`` and the vector-
  Jacobian products for ``theta_i`` (not at step 0, whose start is a constant), the images and
  the step size, exactly as :class:`.student._CheckpointedStep` does in backward.

A program reads static input buffers (theta, images, labels, step size, the step's draws, the
incoming gradient) and writes static output buffers; a call copies its inputs in, replays, and
the caller copies out what it keeps. The chosen DSA operations are part of a program's shape
(``single`` mode: one op per step, so up to six programs of each kind; ``all`` mode: one), the
random numbers are data. All programs of one :class:`StepPrograms` share one memory pool: a
program's only values that outlive it are in its static outputs, outside the pool, and replays
never overlap (one stream), so sharing is safe in any replay order.

:func:`unroll_graphed` runs the N steps with these programs under one autograd node whose backward
runs the ``vjp`` programs from the last step to the first and sums the image and step-size
gradients in that order: the very order in which autograd accumulates them for the checkpoint
mode. So the gradient is the checkpoint mode's, bit for bit on a CPU (tests/engine/test_graphed.py);
on CUDA the replayed kernels are the eager ones (tests/engine/test_cuda_fastpaths.py).

On a CPU (or with ``capture=False``) the programs run eagerly from the same static buffers: the
same numbers, the path the CPU tests check. ``memory_mode: auto`` times it against the other two
modes on CUDA and keeps the fastest (:func:`.autotune.probe_memory_mode`); a capture that fails
takes the mode out of the running, with the reason logged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .draws import StepDraw
from .dsa import DSAParams
from .functional import FlatModel
from .student import _student_step, _vjp

__all__ = ["StepPrograms", "unroll_graphed"]

# Warm-up runs of a program on a side stream before its capture (lazy initialisations,
# cuDNN/cuBLAS workspaces and the autograd engine's device threads happen outside the graph).
_WARMUP = 2


def _draw_key(draw: StepDraw) -> tuple:
    """What of a step's draws is part of a program's shape: minibatch size and the ops (and their tensors' shapes)."""
    idx = None if draw.idx is None else (tuple(draw.idx.shape), str(draw.idx.dtype))
    ops = None if draw.dsa is None else tuple(
        (op, tuple((tuple(t.shape), str(t.dtype)) for t in ts)) for op, ts in draw.dsa.ops)
    return idx, ops


class _Program:
    """One captured (or eager) step at one shape: static inputs, static outputs, ``fn`` from the first to the second."""

    def __init__(self, fn: Callable[[], None], inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> None:
        self.fn = fn
        self.inputs = inputs
        self.outputs = outputs
        self.graph: Any = None

    def __call__(self, values: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        for static, value in zip(self.inputs, values):
            static.copy_(value)
        if self.graph is None:
            self.fn()
        else:
            self.graph.replay()
        return self.outputs


class StepPrograms:
    """The step programs of one student network (see the module docstring), made on first use of each shape.

    Args:
        model: the student's flat functional network (its device decides where the buffers live).
        dsa_params: DSA strengths of every step.
        capture: capture each program as a CUDA graph (default: on a CUDA device); ``False`` runs the
            programs eagerly from the same static buffers (CPU, and the tests).
    """

    def __init__(self, model: FlatModel, dsa_params: DSAParams | None, capture: bool | None = None) -> None:
        self.model = model
        self.dsa_params = dsa_params
        device = next(model.module.parameters()).device
        self.capture = (device.type == "cuda") if capture is None else bool(capture)
        self._programs: dict[tuple, _Program] = {}
        self._pool: Any = None

    def __len__(self) -> int:
        return len(self._programs)

    # ------------------------------------------------------------------ the two kinds of step

    def forward(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor,
                draw: StepDraw) -> torch.Tensor:
        """One student step without a graph (a view of a static output: copy what you keep)."""
        (out,) = self._program("forward", False, theta, x, y, alpha, draw)([theta, x, y, alpha, *draw.tensors()])
        return out

    def vjp(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor, draw: StepDraw,
            grad_out: torch.Tensor, need_theta: bool) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """The vector-Jacobian products of one step for (theta, x, alpha) (``None`` for theta unless
        ``need_theta``); views of static outputs, valid until the next call of the same program."""
        prog = self._program("vjp", need_theta, theta, x, y, alpha, draw)
        outs = prog([theta, x, y, alpha, grad_out, *draw.tensors()])
        return (outs[0], outs[1], outs[2]) if need_theta else (None, outs[0], outs[1])

    # ------------------------------------------------------------------ building

    def _program(self, kind: str, need_theta: bool, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                 alpha: torch.Tensor, draw: StepDraw) -> _Program:
        key = (kind, need_theta, tuple(theta.shape), tuple(x.shape), str(x.dtype), tuple(y.shape), _draw_key(draw))
        prog = self._programs.get(key)
        if prog is None:
            prog = self._build(kind, need_theta, theta, x, y, alpha, draw)
            self._programs[key] = prog
        return prog

    def _build(self, kind: str, need_theta: bool, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
               alpha: torch.Tensor, draw: StepDraw) -> _Program:
        s_theta, s_x, s_y, s_alpha = (torch.empty_like(t) for t in (theta, x, y, alpha))
        s_draw_tensors = [torch.empty_like(t) for t in draw.tensors()]
        s_draw = draw.replace(s_draw_tensors)
        model, params = self.model, self.dsa_params

        def step(th: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor, al: torch.Tensor, create_graph: bool
                 ) -> torch.Tensor:
            return _student_step(model, th, xx, yy, al, s_draw, "", params, None, create_graph)

        if kind == "forward":
            out = torch.empty_like(theta)

            def fn() -> None:
                out.copy_(step(s_theta.detach(), s_x.detach(), s_y, s_alpha.detach(), False))

            prog = _Program(fn, [s_theta, s_x, s_y, s_alpha, *s_draw_tensors], [out])
        else:
            s_grad = torch.empty_like(theta)
            needs = (need_theta, True, True)
            outs = ([torch.empty_like(theta)] if need_theta else []) + [torch.empty_like(x), torch.empty_like(alpha)]

            def fn() -> None:
                grads = _vjp(s_theta, s_x, s_alpha, s_y, needs, s_grad,
                             lambda th, xx, yy, al: step(th, xx, yy, al, True))
                for o, g in zip(outs, [g for n, g in zip(needs, grads) if n]):
                    o.copy_(g) if g is not None else o.zero_()

            prog = _Program(fn, [s_theta, s_x, s_y, s_alpha, s_grad, *s_draw_tensors], outs)
        if self.capture:
            self._capture(prog, [theta, x, y, alpha] + ([] if kind == "forward" else [torch.zeros_like(theta)])
                          + draw.tensors())
        return prog

    def _capture(self, prog: _Program, values: list[torch.Tensor]) -> None:
        """Warm ``prog`` up on a side stream with real inputs, then capture it into a CUDA graph (shared pool)."""
        for static, value in zip(prog.inputs, values):
            static.copy_(value)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(_WARMUP):
                prog.fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            prog.fn()
        if self._pool is None:
            self._pool = graph.pool()
        prog.graph = graph


class _GraphedUnroll(torch.autograd.Function):
    """N student steps as one autograd node: forward keeps each step's input, backward replays the steps' vjp."""

    @staticmethod
    def forward(ctx: Any, x_syn: torch.Tensor, step_size: torch.Tensor, theta0: torch.Tensor, y_syn: torch.Tensor,
                programs: StepPrograms, draws: Sequence[StepDraw]) -> torch.Tensor:
        x, alpha = x_syn.detach(), step_size.detach()
        thetas = [theta0.detach()]
        for draw in draws:
            thetas.append(programs.forward(thetas[-1], x, y_syn, alpha, draw).clone())
        for i, draw in enumerate(draws):  # the backward's programs made (captured) here, not inside autograd's backward
            programs._program("vjp", i > 0, thetas[i], x, y_syn, alpha, draw)
        ctx.save_for_backward(x_syn, step_size, y_syn)
        ctx.thetas, ctx.programs, ctx.draws = thetas, programs, list(draws)
        return thetas[-1]

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x_syn, step_size, y_syn = ctx.saved_tensors
        x, alpha = x_syn.detach(), step_size.detach()
        grad, gx_sum, ga_sum = grad_out, None, None
        for i in reversed(range(len(ctx.draws))):  # the order autograd accumulates the checkpointed steps in
            g_theta, g_x, g_alpha = ctx.programs.vjp(ctx.thetas[i], x, y_syn, alpha, ctx.draws[i], grad, i > 0)
            gx_sum = g_x.clone() if gx_sum is None else gx_sum + g_x
            ga_sum = g_alpha.clone() if ga_sum is None else ga_sum + g_alpha
            grad = g_theta
        ctx.thetas = ctx.draws = None
        return gx_sum, ga_sum, None, None, None, None


def unroll_graphed(programs: StepPrograms, theta0: torch.Tensor, x_syn: torch.Tensor, y_syn: torch.Tensor,
                   step_size: torch.Tensor, draws: Sequence[StepDraw], create_graph: bool = True) -> torch.Tensor:
    """:func:`.student.unroll_student` in checkpoint mode through ``programs`` (same result, same gradient).

    Args:
        draws: each inner step's draws on the device (:func:`.draws.draw_slots`).
        create_graph: ``True``: differentiable to ``x_syn`` and ``step_size`` (not to ``theta0``);
            ``False``: the validation pass (no graph).
    """
    if not create_graph:
        theta = theta0.detach()
        x, alpha = x_syn.detach(), step_size.detach()
        for draw in draws:
            theta = programs.forward(theta, x, y_syn, alpha, draw).clone()
        return theta
    if not draws:
        return theta0.detach()
    return _GraphedUnroll.apply(x_syn, step_size, theta0, y_syn, programs, list(draws))
