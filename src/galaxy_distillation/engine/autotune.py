"""Choices made by measuring this device and shape, never by device type alone (each logged).

- :func:`probe_memory_mode`: ``distill.memory_mode: auto`` on CUDA (the Distiller calls it once);
- :func:`resident_experts`: how many experts the Distiller keeps on the device;
- ``teacher.experts_at_once: auto``: :func:`.experts.probe_experts_at_once`;
- ``evaluation.use_vmap: auto``: :func:`.evaluation.vmap_is_faster`.

On CPU the rules are fixed and documented (docs/performance.md: unrolled, one expert at a time,
the per-net loop were measured faster there), so no probe runs.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch

__all__ = ["probe_memory_mode", "resident_experts"]

log = logging.getLogger(__name__)


def probe_memory_mode(distiller: Any) -> str:
    """The faster memory mode of ``distiller`` at its shape on its device (used on CUDA; runs anywhere).

    Times one differentiable pass (the N-step unroll and its backward) of each mode after a warm-up,
    from the current state and the current iteration's draws; a mode that runs out of memory, or
    whose peak passes 90 % of the device memory, is out. Leaves the distiller's images, step size and
    optimiser states as they were (only their gradients are computed and dropped).
    """
    d = distiller
    device = d.device
    cuda = device.type == "cuda"
    expert, start = d._choose(d.iteration)
    total = torch.cuda.get_device_properties(device).total_memory if cuda else None
    times: dict[str, float] = {}
    for mode in ("checkpoint", "unrolled", "graphed"):
        d.memory_mode = mode
        try:
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            for _ in range(2):  # a warm-up, then the timed pass
                d._draw_iteration(d.iteration)
                t0 = time.perf_counter()
                d.compute_loss(d.iteration, expert, start).backward(inputs=[d.images, d.lr_param])
                if cuda:
                    torch.cuda.synchronize(device)
                times[mode] = time.perf_counter() - t0
            if cuda and torch.cuda.max_memory_allocated(device) > 0.9 * total:
                times[mode] = math.inf
        except torch.cuda.OutOfMemoryError:
            times[mode] = math.inf
        except Exception as exc:  # noqa: BLE001 - a graph capture that fails takes the mode out, with its reason
            if mode != "graphed":
                raise
            log.warning("distill.memory_mode graphed is out on %s: %s: %s", device, type(exc).__name__, exc)
            times[mode] = math.inf
        finally:
            d._draws = {}
            d.images.grad = d.lr_param.grad = None
            if cuda:
                torch.cuda.empty_cache()
    choice = min(times, key=times.get)
    if choice != "graphed":
        d._programs = None  # the captured programs' memory goes back
        if cuda:
            torch.cuda.empty_cache()
    log.info("distill.memory_mode probe on %s (s per differentiable pass): %s -> %s", device, times, choice)
    return choice


def resident_experts(expert_cache: int, n_experts: int, first: torch.Tensor, device: torch.device) -> int:
    """How many experts the Distiller's cache keeps: ``expert_cache``, or on CUDA as many as fit in a
    quarter of the free device memory (so that a bank read at random is read from disk once, not on
    ~every iteration). The same rows either way, so no result changes; the choice is logged."""
    size = int(expert_cache)
    if torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        fit = int(0.25 * free) // max(1, first.numel() * first.element_size())
        size = max(size, min(int(n_experts), fit))
        log.info("Distiller: keeping up to %d of %d experts on %s (expert_cache=%d; a quarter of the free "
                 "memory holds %d)", size, n_experts, device, expert_cache, fit)
    return size
