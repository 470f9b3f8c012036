"""The student: N inner SGD steps on the synthetic set, unrolled (one graph) or memory-flat
(each step recomputed in backward, same gradient), and the normalised matching loss.

:func:`unroll_students` runs K such students at once (K distillations whose synthetic sets have
the same shape): one program per step, the network applied to the K parameter vectors with
``torch.func.vmap`` (a K-group convolution), each student's own draws, and a result equal to K
:func:`unroll_student` calls (tests/engine/test_batched.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import vmap

from .distill_config import MEMORY_MODES, DistillConfigError
from .draws import StepDraw, draw_step
from .dsa import DEFAULT_DSA_STRATEGY, DSADraws, DSAParams, apply_dsa
from .functional import FlatModel

__all__ = ["unroll_student", "unroll_students", "matching_loss", "matching_losses"]


def _as_draw(step_seed: int | StepDraw, x_syn: torch.Tensor, batch_syn: int | None, dsa_strategy: str,
             dsa_params: DSAParams | None) -> StepDraw:
    """A step's draws: ``step_seed`` itself when already drawn, else drawn from its seed and copied
    to x_syn's device one by one (``x_syn``: ``(B, C, H, W)``, or ``(K, B, C, H, W)`` for a group)."""
    if isinstance(step_seed, StepDraw):
        return step_seed
    gen = torch.Generator().manual_seed(int(step_seed))
    draw = draw_step(gen, x_syn.shape[-4], (x_syn.shape[-2], x_syn.shape[-1]), batch_syn, dsa_strategy, dsa_params)
    return draw.replace([t.to(device=x_syn.device, dtype=x_syn.dtype) if t.is_floating_point()
                         else t.to(x_syn.device) for t in draw.tensors()])


def _student_step(model: FlatModel, theta: torch.Tensor, x_syn: torch.Tensor, y_syn: torch.Tensor,
                  step_size: torch.Tensor, step_seed: int | StepDraw, dsa_strategy: str,
                  dsa_params: DSAParams | None, batch_syn: int | None, create_graph: bool) -> torch.Tensor:
    """One student SGD step ``theta - alpha * grad CE(theta; DSA(x_syn[batch]))``.

    All randomness (minibatch, DSA) comes from a generator seeded with ``step_seed``, so a
    recomputation (checkpoint mode) replays exactly the same step. ``step_seed`` may instead be
    the step's draws already made from that generator (a :class:`StepDraw`, on x_syn's device:
    :mod:`.draws`), which computes the same step without any host round trip.

    Args:
        theta: ``(P,)`` parameters; x_syn ``(B, C, H, W)``; y_syn ``(B,)``; step_size scalar.

    Returns:
        ``(P,)`` next parameters (detached unless ``create_graph``).
    """
    draw = _as_draw(step_seed, x_syn, batch_syn, dsa_strategy, dsa_params)
    x, y = x_syn, y_syn
    if draw.idx is not None:
        x, y = x_syn[draw.idx], y_syn[draw.idx]
    with torch.enable_grad():
        if not theta.requires_grad:
            theta = theta.detach().requires_grad_(True)
        x = apply_dsa(x, draw.dsa, dsa_params)
        ce = F.cross_entropy(model.forward(theta, x), y)
        (grad,) = torch.autograd.grad(ce, theta, create_graph=create_graph)
    if not create_graph:
        return (theta - step_size * grad).detach()
    return theta - step_size * grad


class _CheckpointedStep(torch.autograd.Function):
    """One student step that stores only its inputs and recomputes its graph in backward.

    ``torch.utils.checkpoint(use_reentrant=False)`` around a step that itself calls
    ``torch.autograd.grad(create_graph=True)`` was measured to keep most of the inner graph
    alive (memory still grew with N), so the checkpoint is written by hand: forward runs the
    step without a graph; backward rebuilds that one step's double-backward graph from the saved
    ``theta_i`` and returns the exact vector-Jacobian products for ``theta_i``, ``x_syn`` and
    ``alpha``. Memory: one ``(P,)`` vector per step plus one step's activations. Supports
    first-order backward through the unroll (all that distillation needs).
    """

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, x_syn: torch.Tensor, step_size: torch.Tensor, y_syn: torch.Tensor,
                model: FlatModel, seed: int | StepDraw, dsa_strategy: str, dsa_params: DSAParams | None,
                batch_syn: int | None) -> torch.Tensor:
        ctx.save_for_backward(theta, x_syn, step_size, y_syn)
        ctx.args = (model, seed, dsa_strategy, dsa_params, batch_syn)
        return _student_step(model, theta.detach(), x_syn.detach(), y_syn, step_size.detach(), seed,
                             dsa_strategy, dsa_params, batch_syn, create_graph=False)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        model, seed, dsa_strategy, dsa_params, batch_syn = ctx.args
        result = _replay_vjp(ctx, grad_out, lambda theta, x, y, alpha: _student_step(
            model, theta, x, y, alpha, seed, dsa_strategy, dsa_params, batch_syn, create_graph=True))
        return (*result, None, None, None, None, None, None)


def _replay_vjp(ctx: Any, grad_out: torch.Tensor,
                step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
                ) -> list[torch.Tensor | None]:
    """The backward of a checkpointed step: rebuild the one step's double-backward graph with
    ``step(theta, x_syn, y_syn, step_size)`` from the saved ``(theta, x_syn, step_size, y_syn)``
    and return the vector-Jacobian products for the first three (``None`` where not needed)."""
    theta, x_syn, step_size, y_syn = ctx.saved_tensors
    return _vjp(theta, x_syn, step_size, y_syn, ctx.needs_input_grad[:3], grad_out, step)


def _vjp(theta: torch.Tensor, x_syn: torch.Tensor, step_size: torch.Tensor, y_syn: torch.Tensor,
         needs: Sequence[bool], grad_out: torch.Tensor,
         step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
         ) -> list[torch.Tensor | None]:
    """The vector-Jacobian products of one student step at ``(theta, x_syn, step_size)`` with ``grad_out``,
    for the inputs ``needs`` flags (``None`` for the others): the step rebuilt with its double-backward
    graph. Shared by the checkpointed steps and the graphed ones (:mod:`.graphs`)."""
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(bool(n) or i == 0) for i, (t, n) in
                  enumerate(zip((theta, x_syn, step_size), needs))]
        out = step(leaves[0], leaves[1], y_syn, leaves[2])
        wanted = [leaf for leaf, n in zip(leaves, needs) if n]
        grads = iter(torch.autograd.grad(out, wanted, grad_out, allow_unused=True)) if wanted else iter(())
    return [next(grads) if n else None for n in needs]


def unroll_student(model: FlatModel, theta0: torch.Tensor, x_syn: torch.Tensor, y_syn: torch.Tensor,
                   step_size: torch.Tensor, step_seeds: Sequence[int | StepDraw], dsa_strategy: str = DEFAULT_DSA_STRATEGY,
                   dsa_params: DSAParams | None = None, batch_syn: int | None = None,
                   memory_mode: str = "unrolled", create_graph: bool = True) -> torch.Tensor:
    """Run ``len(step_seeds)`` student steps from ``theta0``.

    Args:
        model: flat functional view of the student network.
        theta0: ``(P,)`` start parameters (treated as a constant).
        x_syn: ``(B, C, H, W)`` synthetic images (may require grad).
        y_syn: ``(B,)`` labels.
        step_size: scalar tensor alpha (may require grad).
        step_seeds: one seed per inner step (minibatch + DSA draws), or each step's draws
            already made from it (:func:`.draws.draw_steps` + :func:`.draws.to_device`; same result).
        memory_mode: ``"unrolled"`` keeps every step's graph; ``"checkpoint"`` keeps only each
            step's input and recomputes the step in backward (memory flat in N, same gradient).
        create_graph: ``False`` runs without any graph (validation pass).

    Returns:
        ``(P,)`` parameters after the last step.
    """
    if memory_mode not in MEMORY_MODES:
        raise DistillConfigError(f"memory_mode must be one of {MEMORY_MODES}, got {memory_mode!r}")
    theta = theta0.detach()
    if create_graph and memory_mode != "checkpoint":
        # a leaf, so that a plain ``loss.backward()`` keeps working; a caller that back-propagates
        # with ``inputs=[images, alpha]`` (the Distiller) skips step 0's Hessian-vector product.
        theta = theta.clone().requires_grad_(True)
    # checkpoint mode: theta_0 is a constant, so step 0's backward never computes its gradient
    for seed in step_seeds:
        if create_graph and memory_mode == "checkpoint":
            theta = _CheckpointedStep.apply(theta, x_syn, step_size, y_syn, model, seed,
                                            dsa_strategy, dsa_params, batch_syn)
        else:
            theta = _student_step(model, theta, x_syn if create_graph else x_syn.detach(), y_syn,
                                  step_size if create_graph else step_size.detach(), seed,
                                  dsa_strategy, dsa_params, batch_syn, create_graph)
    return theta


# ----------------------------------------------------------------------------- K students at once


def _dsa_group(x: torch.Tensor, dsas: Sequence[DSADraws | None], params: DSAParams | None) -> torch.Tensor:
    """Each student's DSA draws applied to its images ``x`` ``(K, b, C, H, W)``. Students whose draws
    chose the same ops are augmented in one call on their images side by side: every DSA op is
    per-sample, so this equals one :func:`.dsa.apply_dsa` call per student."""
    if all(d is None for d in dsas):
        return x
    K, b = x.shape[:2]
    groups: dict[tuple[str, ...], list[int]] = {}
    for k, d in enumerate(dsas):
        groups.setdefault(() if d is None else tuple(op for op, _ in d.ops), []).append(k)
    pieces, order = [], []
    for ops, ks in groups.items():
        xs = x if len(ks) == K else x[ks]
        if ops:
            first = dsas[ks[0]].ops
            merged = DSADraws([(op, tuple(torch.cat([dsas[k].ops[j][1][t] for k in ks]) for t in range(len(ts))))
                               for j, (op, ts) in enumerate(first)])
            xs = apply_dsa(xs.flatten(0, 1), merged, params).view(len(ks), b, *x.shape[2:])
        pieces.append(xs)
        order += ks
    out = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    if order != list(range(K)):
        out = out[torch.argsort(torch.tensor(order)).to(x.device)]
    return out


def _group_step(model: FlatModel, thetas: torch.Tensor, x_syn: torch.Tensor, y_syn: torch.Tensor,
                step_size: torch.Tensor, draws: Sequence[StepDraw], dsa_params: DSAParams | None,
                create_graph: bool) -> torch.Tensor:
    """K student steps at once: ``thetas`` ``(K, P)``, ``x_syn`` ``(K, B, C, H, W)``, ``y_syn`` ``(K, B)``,
    ``step_size`` ``(K,)``, one :class:`StepDraw` per student. The network runs on the K parameter
    vectors with ``vmap``; the K mean losses are summed, so each slice of the gradient is its own
    student's. Returns ``(K, P)`` (detached unless ``create_graph``)."""
    K = thetas.shape[0]
    x, y = x_syn, y_syn
    if draws[0].idx is not None:
        rows = torch.arange(K, device=x_syn.device).view(K, 1)
        idx = torch.stack([d.idx for d in draws])
        x, y = x_syn[rows, idx], y_syn[rows, idx]
    with torch.enable_grad():
        if not thetas.requires_grad:
            thetas = thetas.detach().requires_grad_(True)
        x = _dsa_group(x, [d.dsa for d in draws], dsa_params)
        logits = vmap(model.forward)(thetas, x)  # (K, b, classes)
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(K, -1).mean(1)
        (grad,) = torch.autograd.grad(ce.sum(), thetas, create_graph=create_graph)
    out = thetas - step_size.view(K, 1) * grad
    return out if create_graph else out.detach()


class _CheckpointedGroupStep(torch.autograd.Function):
    """:class:`_CheckpointedStep` for K students at once (:func:`_group_step` recomputed in backward)."""

    @staticmethod
    def forward(ctx: Any, thetas: torch.Tensor, x_syn: torch.Tensor, step_size: torch.Tensor, y_syn: torch.Tensor,
                model: FlatModel, draws: Sequence[StepDraw], dsa_params: DSAParams | None) -> torch.Tensor:
        ctx.save_for_backward(thetas, x_syn, step_size, y_syn)
        ctx.args = (model, draws, dsa_params)
        return _group_step(model, thetas.detach(), x_syn.detach(), y_syn, step_size.detach(), draws, dsa_params,
                           create_graph=False)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        model, draws, dsa_params = ctx.args
        result = _replay_vjp(ctx, grad_out, lambda thetas, x, y, alpha: _group_step(
            model, thetas, x, y, alpha, draws, dsa_params, create_graph=True))
        return (*result, None, None, None, None)


def unroll_students(model: FlatModel, theta0: torch.Tensor, x_syn: torch.Tensor, y_syn: torch.Tensor,
                    step_size: torch.Tensor, step_seeds: Sequence[Sequence[int | StepDraw]],
                    dsa_strategy: str = DEFAULT_DSA_STRATEGY, dsa_params: DSAParams | None = None,
                    batch_syn: int | None = None, memory_mode: str = "unrolled",
                    create_graph: bool = True) -> torch.Tensor:
    """K :func:`unroll_student` runs at once (same network, same synthetic-set shape and step count).

    Args:
        theta0: ``(K, P)`` start parameters; x_syn ``(K, B, C, H, W)``; y_syn ``(K, B)``;
            step_size ``(K,)``; step_seeds: K lists of N seeds or draws (student k's own).
        the others: as :func:`unroll_student`, shared by the K students.

    Returns:
        ``(K, P)``: row k equals ``unroll_student`` of student k (to float rounding: the batched
        kernels sum in another order). Gradients to ``x_syn`` and ``step_size`` are each student's own.
    """
    if memory_mode not in MEMORY_MODES:
        raise DistillConfigError(f"memory_mode must be one of {MEMORY_MODES}, got {memory_mode!r}")
    K = theta0.shape[0] if theta0.dim() == 2 else -1
    if K < 1 or x_syn.dim() != 5 or x_syn.shape[0] != K or tuple(y_syn.shape) != tuple(x_syn.shape[:2]) \
            or tuple(step_size.shape) != (K,) or len(step_seeds) != K or len({len(s) for s in step_seeds}) != 1:
        raise DistillConfigError(
            f"unroll_students needs theta0 (K, P), x_syn (K, B, C, H, W), y_syn (K, B), step_size (K,) and K equal-length "
            f"seed lists; got {tuple(theta0.shape)}, {tuple(x_syn.shape)}, {tuple(y_syn.shape)}, "
            f"{tuple(step_size.shape)}, {[len(s) for s in step_seeds]}")
    draws = [[_as_draw(s, x_syn, batch_syn, dsa_strategy, dsa_params) for s in seeds] for seeds in step_seeds]
    thetas = theta0.detach()
    if create_graph and memory_mode != "checkpoint":
        thetas = thetas.clone().requires_grad_(True)
    for i in range(len(step_seeds[0])):
        step = [draws[k][i] for k in range(K)]
        if create_graph and memory_mode == "checkpoint":
            thetas = _CheckpointedGroupStep.apply(thetas, x_syn, step_size, y_syn, model, step, dsa_params)
        else:
            thetas = _group_step(model, thetas, x_syn if create_graph else x_syn.detach(), y_syn,
                                 step_size if create_graph else step_size.detach(), step, dsa_params, create_graph)
    return thetas


def matching_losses(theta_n: torch.Tensor, theta_start: torch.Tensor, theta_target: torch.Tensor) -> torch.Tensor:
    """:func:`matching_loss` of K students at once: ``(K, P)`` each, returns ``(K,)``."""
    target = theta_target.detach()
    denom = ((theta_start.detach() - target) ** 2).sum(1)
    return ((theta_n - target) ** 2).sum(1) / denom


def matching_loss(theta_n: torch.Tensor, theta_start: torch.Tensor, theta_target: torch.Tensor) -> torch.Tensor:
    """Normalised trajectory-matching loss ``||theta_n - target||^2 / ||start - target||^2`` (scalar)."""
    target = theta_target.detach()
    denom = ((theta_start.detach() - target) ** 2).sum()
    return ((theta_n - target) ** 2).sum() / denom
