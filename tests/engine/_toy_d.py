"""Helpers for engineer D's engine tests (matching, STM, checkpoints): tiny experts and problems."""

from __future__ import annotations

import torch

from _configs import distill_config
from galaxy_distillation.engine import DistillConfig, InMemoryExperts
from galaxy_distillation.engine.functional import FlatModel
from galaxy_distillation.engine.networks import build_from_spec

TINY_ARCH = {"arch": "convnet", "width": 4, "depth": 1}


def random_experts(arch: dict, channels: int, num_classes: int, size: int, n_experts: int = 2, epochs: int = 4,
                   seed: int = 0, dtype: torch.dtype = torch.float32, step: float = 0.02) -> InMemoryExperts:
    """Random-walk "expert" trajectories (E+1, P) starting at a real initialisation (no training)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    flat = FlatModel(build_from_spec(arch, channels, num_classes, (size, size)))
    trajs = []
    for _ in range(n_experts):
        init = flat.flat_params().to(dtype)
        walk = torch.randn(epochs, flat.numel, generator=g, dtype=dtype) * step
        trajs.append(torch.cat([init[None], init[None] + walk.cumsum(0)]))
    return InMemoryExperts(trajs)


def small_problem(num_classes: int = 3, n_per_class: int = 4, size: int = 8, seed: int = 0,
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images (N, 3, size, size) and class-major labels (N,)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_classes * n_per_class, 3, size, size, generator=g, dtype=dtype)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    return x, y


def fast_config(**overrides) -> DistillConfig:
    """A DistillConfig small enough for unit tests (STM, N=3, no checkpoints)."""
    base = dict(method="stm", ipc=1, syn_steps=3, iterations=6, lr_img=10.0, lr_init=0.01, max_start_epoch=3,
                checkpoint_every=0, seed=0, dsa_strategy="color_crop_cutout_flip_scale_rotate")
    base.update(overrides)
    return distill_config(**base)
