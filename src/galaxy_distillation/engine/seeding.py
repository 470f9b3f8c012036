"""Seeding: every random stream of the project is derived here from a parameter seed.

- :func:`derive_seed` (numpy ``SeedSequence``) derives the seeds of experts, evaluation nets,
  quick evaluations and baselines from ``(seed, key, ...)``;
- :func:`mix_seed` (a splitmix64 chain, cheap enough to call once per inner student step)
  derives the per-iteration streams of a distillation: expert/start-epoch choice, and the
  minibatch + DSA draws of every inner step (training and validation slots).

Both are pure functions of their integers, so a run, a resumed run and a run on another
machine (or a Ray worker) replay the same draws. They are kept apart only so that the
seeds of earlier runs stay bit-identical.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["make_generator", "clone_generator", "derive_seed", "mix_seed"]


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


def clone_generator(generator: torch.Generator) -> torch.Generator:
    """An independent generator in the same state (for siamese augmentation of two batches)."""
    g = torch.Generator(device=generator.device)
    g.set_state(generator.get_state())
    return g


def derive_seed(seed: int, *keys: int) -> int:
    """Deterministically derive an independent 63-bit seed from ``seed`` and integer ``keys``."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *[int(k) for k in keys]])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def mix_seed(*values: int) -> int:
    """Deterministically mix integers into one 63-bit seed (splitmix64 chain)."""
    mask = (1 << 64) - 1
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & mask)) & mask
        h = (h + 0x9E3779B97F4A7C15) & mask
        z = h
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        h = z ^ (z >> 31)
    return h & ((1 << 63) - 1)
