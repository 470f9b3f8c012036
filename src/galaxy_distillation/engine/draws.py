"""All the random numbers of a distillation iteration, drawn at once and copied to the device once.

An inner student step draws its minibatch (``randperm``, when ``batch_syn`` is set) and its DSA
transform from a CPU generator seeded with the step's seed (:func:`student._student_step`). Done
step by step on a GPU, every draw is a small blocking host-to-device copy (a host sync). Here the
same generators produce the same numbers in the same order for every step of the iteration first
(:func:`draw_steps`), and :func:`to_device` packs them into ONE int32 buffer (float32 uniforms by
their bits, integers as values), copies it with one non-blocking transfer from pinned memory, and
hands each step views of the device copy. The numbers are bit-identical to the per-step draws,
so the student computes exactly what it computed before (tests/engine/test_draws.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .dsa import DSADraws, DSAParams, draw_dsa

__all__ = ["StepDraw", "draw_slots", "draw_step", "draw_steps", "to_device"]


@dataclass
class StepDraw:
    """The draws of one inner step: the minibatch indices (or ``None`` = the whole set) and the DSA draws."""

    idx: torch.Tensor | None
    dsa: DSADraws | None

    def tensors(self) -> list[torch.Tensor]:
        return ([] if self.idx is None else [self.idx]) + ([] if self.dsa is None else self.dsa.tensors())

    def replace(self, tensors: list[torch.Tensor]) -> StepDraw:
        it = iter(tensors)
        idx = None if self.idx is None else next(it)
        dsa = None if self.dsa is None else self.dsa.replace(list(it))
        return StepDraw(idx, dsa)


def draw_step(generator: torch.Generator, n_images: int, hw: tuple[int, int], batch_syn: int | None,
              dsa_strategy: str, dsa_params: DSAParams | None) -> StepDraw:
    """One step's draws from ``generator``, in the order the step itself would make them (CPU)."""
    idx = None
    batch = int(n_images)
    if batch_syn is not None and batch_syn < n_images:
        idx = torch.randperm(int(n_images), generator=generator)[:batch_syn]
        batch = int(idx.numel())
    return StepDraw(idx, draw_dsa(dsa_strategy, batch, hw, generator, dsa_params))


def draw_steps(seeds: Sequence[int], n_images: int, hw: tuple[int, int], batch_syn: int | None,
               dsa_strategy: str, dsa_params: DSAParams | None) -> list[StepDraw]:
    """The draws of one step per seed (each from a fresh CPU generator seeded with it), on the CPU."""
    return [draw_step(torch.Generator().manual_seed(int(s)), n_images, hw, batch_syn, dsa_strategy, dsa_params)
            for s in seeds]


def to_device(steps: Sequence[StepDraw], device: torch.device | str, dtype: torch.dtype) -> list[StepDraw]:
    """Copy the draws of many steps to ``device`` in one transfer; floats become ``dtype`` (exact from float32).

    Returns new :class:`StepDraw` objects whose tensors are views of the one device buffer. No host
    sync: the buffer is pinned and copied with ``non_blocking=True`` on CUDA.
    """
    device = torch.device(device)
    tensors = [t for s in steps for t in s.tensors()]
    floats = [t for t in tensors if t.is_floating_point()]
    ints = [t for t in tensors if not t.is_floating_point()]
    nf = sum(t.numel() for t in floats)
    parts = [t.reshape(-1).to(torch.float32).view(torch.int32) for t in floats]
    parts += [t.reshape(-1).to(torch.int32) for t in ints]
    if not parts:
        return list(steps)
    host = torch.cat(parts)
    if device.type == "cuda":
        host = host.pin_memory()
    buf = host.to(device, non_blocking=True)
    fbuf = buf[:nf].view(torch.float32).to(dtype)
    ibuf = buf[nf:].to(torch.int64)
    out_f, out_i, fo, io = [], [], 0, 0
    for t in floats:
        out_f.append(fbuf[fo: fo + t.numel()].view(t.shape))
        fo += t.numel()
    for t in ints:
        out_i.append(ibuf[io: io + t.numel()].view(t.shape))
        io += t.numel()
    fi, ii = iter(out_f), iter(out_i)
    result = []
    for s in steps:
        mine = [next(fi) if t.is_floating_point() else next(ii) for t in s.tensors()]
        result.append(s.replace(mine))
    return result


def draw_slots(seeds: dict[int, list[int]], images: torch.Tensor, batch_syn: int | None, dsa_strategy: str,
               dsa_params: DSAParams | None, dtype: torch.dtype | None = None) -> dict[int, list[StepDraw]]:
    """The draws of several step-seed lists (e.g. a distillation iteration's training and validation
    slots) for the synthetic set ``images``, copied to its device in ONE transfer."""
    n, _, h, w = images.shape
    flat = draw_steps([s for group in seeds.values() for s in group], n, (h, w), batch_syn, dsa_strategy, dsa_params)
    flat = to_device(flat, images.device, dtype or images.dtype)
    out, i = {}, 0
    for slot, group in seeds.items():
        out[slot] = flat[i: i + len(group)]
        i += len(group)
    return out
