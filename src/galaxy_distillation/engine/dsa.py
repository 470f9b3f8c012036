"""Differentiable Siamese Augmentation (DSA, Zhao & Bilen 2021), written from its description.

Operations (all differentiable w.r.t. the pixels):

* ``color``  — brightness ``x + (u - 0.5) * brightness``, then saturation
  ``(x - mean_c) * (u * saturation) + mean_c`` (``mean_c`` = per-pixel channel mean), then contrast
  ``(x - mean) * (u + contrast) + mean`` (``mean`` = per-image mean); three independent
  per-sample draws ``u ~ U[0, 1)``. All three are applied whenever ``color`` is picked.
* ``crop``   — integer translation by up to ``round(ratio_crop_pad * H)`` / ``* W`` pixels in each
  direction (per sample, uniform), uncovered pixels filled with zeros.
* ``cutout`` — a zero square of ``round(ratio_cutout * H) x round(ratio_cutout * W)`` pixels at a
  uniformly random centre (clipped at the border).
* ``flip``   — horizontal flip with probability ``prob_flip``.
* ``scale``  — independent x / y scaling by a factor uniform in ``[1/ratio_scale, ratio_scale]``
  (bilinear ``grid_sample``, zeros outside, ``align_corners=True``).
* ``rotate`` — rotation by an angle uniform in ``[-ratio_rotate, ratio_rotate]`` degrees.

Strategy semantics (``DSAParams.mode``):

* ``"single"`` (default; DSA's ``aug_mode='S'`` which MTT and the galaxy paper use): for each call
  ONE operation of the ``_``-separated strategy is chosen uniformly at random (shared by the
  whole batch) and applied with per-sample random parameters. ``color`` counts as one operation
  (its three sub-steps are all applied).
* ``"all"`` (DSA's ``aug_mode='M'``): every operation of the strategy is applied in order.

Randomness: every random number is drawn from the caller's ``generator`` (on the generator's
device, normally CPU) and then moved to ``x.device`` (:func:`draw_dsa` draws, :func:`apply_dsa`
applies; :func:`dsa_augment` is the two in one call). Two calls with generators in the same
state therefore apply the identical transform (the siamese property), on CPU and on CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "DEFAULT_DSA_STRATEGY",
    "DSA_OPERATIONS",
    "DSAError",
    "DSAParams",
    "DSADraws",
    "apply_dsa",
    "draw_dsa",
    "dsa_augment",
    "parse_strategy",
]

DEFAULT_DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"


class DSAError(ValueError):
    """Raised for an invalid DSA strategy, parameters or input."""


@dataclass
class DSAParams:
    """Strengths of the DSA operations (defaults = DSA / MTT's usual values)."""

    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    mode: str = "single"  # "single" (one op per call, DSA 'S') or "all" (every op, DSA 'M')


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws U[0, 1) (float32) from ``generator``, on the generator's device, shape (n,)."""
    return torch.rand(n, generator=generator, device=generator.device, dtype=torch.float32)


def _randint(low: int, high: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` integers (int64) uniform in [low, high) from ``generator``, on its device, shape (n,)."""
    return torch.randint(low, high, (n,), generator=generator, device=generator.device)


# Each operation is a pair: ``draw(b, h, w, generator, params) -> tuple of tensors`` (every random
# number the op uses, float32 uniforms or int64 integers, in the order the generator yields them)
# and ``apply(x, draws, params) -> x'`` (no randomness; the draws already on x's device and, for
# the floats, in x's dtype). Drawing and applying separately lets a caller draw a whole iteration
# at once and copy it to the device in one transfer (engine/draws.py).

def _draw_color(b: int, h: int, w: int, g: torch.Generator, p: DSAParams) -> tuple[torch.Tensor, ...]:
    return _uniform(b, g), _uniform(b, g), _uniform(b, g)


def _color(x: torch.Tensor, d: tuple[torch.Tensor, ...], p: DSAParams) -> torch.Tensor:
    b = x.shape[0]
    x = x + (d[0].view(b, 1, 1, 1) - 0.5) * p.brightness
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * (d[1].view(b, 1, 1, 1) * p.saturation) + m
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (d[2].view(b, 1, 1, 1) + p.contrast) + m


def _crop_pad(h: int, w: int, p: DSAParams) -> tuple[int, int]:
    return int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)


def _draw_crop(b: int, h: int, w: int, g: torch.Generator, p: DSAParams) -> tuple[torch.Tensor, ...]:
    sh, sw = _crop_pad(h, w, p)
    return _randint(-sh, sh + 1, b, g), _randint(-sw, sw + 1, b, g)


def _crop(x: torch.Tensor, d: tuple[torch.Tensor, ...], p: DSAParams) -> torch.Tensor:
    b, c, h, w = x.shape
    sh, sw = _crop_pad(h, w, p)
    ty, tx = d
    if sh == 0 and sw == 0:
        return x
    xp = F.pad(x, (sw, sw, sh, sh))  # (B, C, H + 2sh, W + 2sw), zeros outside
    rows = torch.arange(h, device=x.device).view(1, h, 1) + sh - ty.view(b, 1, 1)  # (B, H, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + sw - tx.view(b, 1, 1)  # (B, 1, W)
    bidx = torch.arange(b, device=x.device).view(b, 1, 1)
    out = xp.permute(0, 2, 3, 1)[bidx, rows, cols]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def _cut_size(h: int, w: int, p: DSAParams) -> tuple[int, int]:
    return int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)


def _draw_cutout(b: int, h: int, w: int, g: torch.Generator, p: DSAParams) -> tuple[torch.Tensor, ...]:
    ch, cw = _cut_size(h, w, p)
    return _randint(0, h + (1 - ch % 2), b, g), _randint(0, w + (1 - cw % 2), b, g)


def _cutout(x: torch.Tensor, d: tuple[torch.Tensor, ...], p: DSAParams) -> torch.Tensor:
    b, c, h, w = x.shape
    ch, cw = _cut_size(h, w, p)
    cy, cx = d[0].view(b, 1, 1), d[1].view(b, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = cy - ch // 2, cx - cw // 2
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)  # (B, H, W)
    mask = (~inside).to(x.dtype).unsqueeze(1)
    return x * mask


def _draw_one(b: int, h: int, w: int, g: torch.Generator, p: DSAParams) -> tuple[torch.Tensor, ...]:
    return (_uniform(b, g),)


def _draw_two(b: int, h: int, w: int, g: torch.Generator, p: DSAParams) -> tuple[torch.Tensor, ...]:
    return _uniform(b, g), _uniform(b, g)


def _flip(x: torch.Tensor, d: tuple[torch.Tensor, ...], p: DSAParams) -> torch.Tensor:
    b = x.shape[0]
    return torch.where(d[0].view(b, 1, 1, 1) < p.prob_flip, x.flip(3), x)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _scale(x: torch.Tensor, d: tuple[torch.Tensor, ...], p: DSAParams) -> torch.Tensor:
    r = p.ratio_scale
    sx = d[0] * (r - 1.0 / r) + 1.0 / r
    sy = d[1] * (r - 1.0 / r) + 1.0 / r
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1)  # (B, 2, 3)
    return _affine(x, theta)


def _rotate(x: torch.Tensor, d: tuple[torch.Tensor, ...], p: DSAParams) -> torch.Tensor:
    ang = (d[0] - 0.5) * 2.0 * p.ratio_rotate * math.pi / 180.0
    cos, sin, zero = torch.cos(ang), torch.sin(ang), torch.zeros_like(ang)
    theta = torch.stack([torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1)  # (B, 2, 3)
    return _affine(x, theta)


_Draw = Callable[[int, int, int, torch.Generator, DSAParams], tuple[torch.Tensor, ...]]
_Apply = Callable[[torch.Tensor, tuple[torch.Tensor, ...], DSAParams], torch.Tensor]
_OPS: dict[str, tuple[_Draw, _Apply]] = {
    "color": (_draw_color, _color),
    "crop": (_draw_crop, _crop),
    "cutout": (_draw_cutout, _cutout),
    "flip": (_draw_one, _flip),
    "scale": (_draw_two, _scale),
    "rotate": (_draw_one, _rotate),
}


def _per_call(op: str) -> Callable[[torch.Tensor, torch.Generator, DSAParams], torch.Tensor]:
    draw, apply = _OPS[op]

    def run(x: torch.Tensor, g: torch.Generator, p: DSAParams) -> torch.Tensor:
        b, _, h, w = x.shape
        return apply(x, _to_x(draw(b, h, w, g, p), x), p)

    return run


DSA_OPERATIONS: dict[str, Callable[[torch.Tensor, torch.Generator, DSAParams], torch.Tensor]] = {
    op: _per_call(op) for op in _OPS
}


def _to_x(draws: tuple[torch.Tensor, ...], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Move one op's draws to x's device (floats also to x's dtype), one copy per tensor."""
    return tuple(t.to(device=x.device, dtype=x.dtype) if t.is_floating_point() else t.to(x.device) for t in draws)


def parse_strategy(strategy: str) -> list[str]:
    """Split a strategy string like ``"color_crop_flip"`` into validated op names ([] for ""/"none")."""
    if strategy is None or strategy.strip().lower() in ("", "none"):
        return []
    ops = [s for s in strategy.strip().lower().split("_") if s]
    unknown = [o for o in ops if o not in DSA_OPERATIONS]
    if unknown:
        raise DSAError(f"unknown DSA operation(s) {unknown} in strategy {strategy!r}; known: {list(DSA_OPERATIONS)}")
    return ops


@dataclass
class DSADraws:
    """Every random number of one :func:`dsa_augment` call: the chosen ops and each op's draws."""

    ops: list[tuple[str, tuple[torch.Tensor, ...]]]

    def tensors(self) -> list[torch.Tensor]:
        return [t for _, ts in self.ops for t in ts]

    def replace(self, tensors: list[torch.Tensor]) -> DSADraws:
        """The same ops with their tensors replaced, in :meth:`tensors` order (e.g. device copies)."""
        it = iter(tensors)
        return DSADraws([(op, tuple(next(it) for _ in ts)) for op, ts in self.ops])


def draw_dsa(strategy: str, batch: int, hw: tuple[int, int], generator: torch.Generator,
             params: DSAParams | None = None) -> DSADraws | None:
    """Draw the random numbers of one :func:`dsa_augment` call on ``batch`` images of size ``hw``.

    Consumes ``generator`` exactly as :func:`dsa_augment` does (``None`` for an identity strategy,
    which draws nothing). The draws stay on the generator's device.
    """
    ops = parse_strategy(strategy)
    if not ops:
        return None
    if not isinstance(generator, torch.Generator):
        raise DSAError("dsa_augment needs a torch.Generator (pass one seeded by the caller)")
    p = params or DSAParams()
    if p.mode == "single":
        idx = int(torch.randint(len(ops), (1,), generator=generator, device=generator.device).item())
        chosen = [ops[idx]]
    elif p.mode == "all":
        chosen = ops
    else:
        raise DSAError(f"unknown DSA mode {p.mode!r}; expected 'single' or 'all'")
    h, w = int(hw[0]), int(hw[1])
    return DSADraws([(op, _OPS[op][0](int(batch), h, w, generator, p)) for op in chosen])


def apply_dsa(x: torch.Tensor, draws: DSADraws | None, params: DSAParams | None = None) -> torch.Tensor:
    """Apply drawn DSA ops to ``x`` (no randomness; the draws on x's device, floats in x's dtype)."""
    if draws is None:
        return x
    p = params or DSAParams()
    for op, ts in draws.ops:
        x = _OPS[op][1](x, ts, p)
    return x.contiguous()


def dsa_augment(
    x: torch.Tensor,
    strategy: str,
    generator: torch.Generator,
    params: DSAParams | None = None,
) -> torch.Tensor:
    """Apply differentiable siamese augmentation.

    Args:
        x: images (B, C, H, W), floating point, any device.
        strategy: ``_``-separated ops from ``DSA_OPERATIONS``; ``""`` or ``"none"`` = identity.
        generator: source of all random draws (normally a CPU ``torch.Generator``); advanced by the call.
        params: strengths and mode (see module docstring); defaults to :class:`DSAParams`.

    Returns:
        Augmented images (B, C, H, W), differentiable w.r.t. ``x``.
    """
    ops = parse_strategy(strategy)
    if not ops:
        return x
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise DSAError(f"dsa_augment expects a (B, C, H, W) tensor, got shape {tuple(getattr(x, 'shape', ()))}")
    if not x.is_floating_point():
        raise DSAError(f"dsa_augment expects floating-point images, got {x.dtype}")
    draws = draw_dsa(strategy, x.shape[0], (x.shape[2], x.shape[3]), generator, params)
    return apply_dsa(x, draws.replace(list(_to_x(tuple(draws.tensors()), x))), params)
