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
device, normally CPU) and then moved to ``x.device``. Two calls with generators in the same
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


def _uniform(n: int, generator: torch.Generator, x: torch.Tensor) -> torch.Tensor:
    """``n`` draws U[0, 1) from ``generator`` (on its device), returned on x's device/dtype, shape (n,)."""
    u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float32)
    return u.to(device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` integers uniform in [low, high) from ``generator``, returned on ``device``, shape (n,)."""
    r = torch.randint(low, high, (n,), generator=generator, device=generator.device)
    return r.to(device)


def _color(x: torch.Tensor, g: torch.Generator, p: DSAParams) -> torch.Tensor:
    b = x.shape[0]
    u = _uniform(b, g, x).view(b, 1, 1, 1)
    x = x + (u - 0.5) * p.brightness
    u = _uniform(b, g, x).view(b, 1, 1, 1)
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * (u * p.saturation) + m
    u = _uniform(b, g, x).view(b, 1, 1, 1)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (u + p.contrast) + m


def _crop(x: torch.Tensor, g: torch.Generator, p: DSAParams) -> torch.Tensor:
    b, c, h, w = x.shape
    sh, sw = int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)
    ty = _randint(-sh, sh + 1, b, g, x.device)
    tx = _randint(-sw, sw + 1, b, g, x.device)
    if sh == 0 and sw == 0:
        return x
    xp = F.pad(x, (sw, sw, sh, sh))  # (B, C, H + 2sh, W + 2sw), zeros outside
    rows = torch.arange(h, device=x.device).view(1, h, 1) + sh - ty.view(b, 1, 1)  # (B, H, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + sw - tx.view(b, 1, 1)  # (B, 1, W)
    bidx = torch.arange(b, device=x.device).view(b, 1, 1)
    out = xp.permute(0, 2, 3, 1)[bidx, rows, cols]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, g: torch.Generator, p: DSAParams) -> torch.Tensor:
    b, c, h, w = x.shape
    ch, cw = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
    cy = _randint(0, h + (1 - ch % 2), b, g, x.device).view(b, 1, 1)
    cx = _randint(0, w + (1 - cw % 2), b, g, x.device).view(b, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = cy - ch // 2, cx - cw // 2
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)  # (B, H, W)
    mask = (~inside).to(x.dtype).unsqueeze(1)
    return x * mask


def _flip(x: torch.Tensor, g: torch.Generator, p: DSAParams) -> torch.Tensor:
    b = x.shape[0]
    u = _uniform(b, g, x).view(b, 1, 1, 1)
    return torch.where(u < p.prob_flip, x.flip(3), x)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _scale(x: torch.Tensor, g: torch.Generator, p: DSAParams) -> torch.Tensor:
    b = x.shape[0]
    r = p.ratio_scale
    sx = _uniform(b, g, x) * (r - 1.0 / r) + 1.0 / r
    sy = _uniform(b, g, x) * (r - 1.0 / r) + 1.0 / r
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1)  # (B, 2, 3)
    return _affine(x, theta)


def _rotate(x: torch.Tensor, g: torch.Generator, p: DSAParams) -> torch.Tensor:
    b = x.shape[0]
    ang = (_uniform(b, g, x) - 0.5) * 2.0 * p.ratio_rotate * math.pi / 180.0
    cos, sin, zero = torch.cos(ang), torch.sin(ang), torch.zeros_like(ang)
    theta = torch.stack([torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1)  # (B, 2, 3)
    return _affine(x, theta)


DSA_OPERATIONS: dict[str, Callable[[torch.Tensor, torch.Generator, DSAParams], torch.Tensor]] = {
    "color": _color,
    "crop": _crop,
    "cutout": _cutout,
    "flip": _flip,
    "scale": _scale,
    "rotate": _rotate,
}


def parse_strategy(strategy: str) -> list[str]:
    """Split a strategy string like ``"color_crop_flip"`` into validated op names ([] for ""/"none")."""
    if strategy is None or strategy.strip().lower() in ("", "none"):
        return []
    ops = [s for s in strategy.strip().lower().split("_") if s]
    unknown = [o for o in ops if o not in DSA_OPERATIONS]
    if unknown:
        raise DSAError(f"unknown DSA operation(s) {unknown} in strategy {strategy!r}; known: {list(DSA_OPERATIONS)}")
    return ops


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
    for op in chosen:
        x = DSA_OPERATIONS[op](x, generator, p)
    return x.contiguous()
