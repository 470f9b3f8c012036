"""The student: N inner SGD steps on the synthetic set, unrolled (one graph) or memory-flat
(each step recomputed in backward, same gradient), and the normalised matching loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .distill_config import MEMORY_MODES, DistillConfigError
from .draws import StepDraw, draw_step
from .dsa import DEFAULT_DSA_STRATEGY, DSAParams, apply_dsa
from .functional import FlatModel

__all__ = ["unroll_student", "matching_loss"]


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
    draw = step_seed
    if not isinstance(draw, StepDraw):  # per-step draws, copied to the device one by one
        gen = torch.Generator().manual_seed(int(step_seed))
        draw = draw_step(gen, x_syn.shape[0], (x_syn.shape[2], x_syn.shape[3]), batch_syn, dsa_strategy, dsa_params)
        draw = draw.replace([t.to(device=x_syn.device, dtype=x_syn.dtype) if t.is_floating_point()
                             else t.to(x_syn.device) for t in draw.tensors()])
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
        theta, x_syn, step_size, y_syn = ctx.saved_tensors
        model, seed, dsa_strategy, dsa_params, batch_syn = ctx.args
        needs = ctx.needs_input_grad[:3]
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(bool(n) or i == 0) for i, (t, n) in
                      enumerate(zip((theta, x_syn, step_size), needs))]
            out = _student_step(model, leaves[0], leaves[1], y_syn, leaves[2], seed, dsa_strategy, dsa_params,
                                batch_syn, create_graph=True)
            wanted = [leaf for leaf, n in zip(leaves, needs) if n]
            grads = iter(torch.autograd.grad(out, wanted, grad_out, allow_unused=True)) if wanted else iter(())
        result = [next(grads) if n else None for n in needs]
        return (*result, None, None, None, None, None, None)


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


def matching_loss(theta_n: torch.Tensor, theta_start: torch.Tensor, theta_target: torch.Tensor) -> torch.Tensor:
    """Normalised trajectory-matching loss ``||theta_n - target||^2 / ||start - target||^2`` (scalar)."""
    target = theta_target.detach()
    denom = ((theta_start.detach() - target) ** 2).sum()
    return ((theta_n - target) ** 2).sum() / denom
