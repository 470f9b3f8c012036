"""Resource estimate of a distillation, checked against the device before compute starts.

:func:`estimate_distill_bytes` adds up what a distillation certainly holds at once (a lower
bound, so a valid run is never refused):

- the synthetic set: ``ipc x classes`` images in float32, with their gradient and the
  optimiser's momentum (3 copies);
- the unroll: the student's flat parameters at every inner step kept for the backward pass
  (``syn_steps + 1`` vectors in ``unrolled`` mode; the checkpoint mode keeps them too), plus
  the input batch of one inner step;
- the experts: one expert's trajectory (``epochs + 1`` flat parameter vectors) and the
  start / target parameters.

:func:`check_fits` compares it with the memory available on the device (free CUDA memory,
or the host's available RAM) and raises :class:`ResourceError` (a ``UserError``) naming the
largest part and what to lower. The numerical core stays free of Kedro: the distill node
calls it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from galaxy_distillation.errors import UserError

__all__ = ["ResourceError", "ResourceEstimate", "estimate_distill_bytes", "available_bytes", "check_fits", "human"]

_FLOAT = 4  # bytes of float32


class ResourceError(UserError):
    """The run cannot fit the device; the message names the biggest part and the fix."""


@dataclass(frozen=True)
class ResourceEstimate:
    """Bytes a distillation holds at once, by part (a lower bound)."""

    synthetic: int
    unroll: int
    experts: int

    @property
    def total(self) -> int:
        return self.synthetic + self.unroll + self.experts


def estimate_distill_bytes(
    ipc: int,
    num_classes: int,
    image_shape: tuple[int, int, int],
    num_params: int,
    syn_steps: int,
    expert_epochs: int,
    batch_syn: int | None = None,
) -> ResourceEstimate:
    """Lower bound of the bytes a distillation needs (see the module docstring).

    Args:
        ipc: images per class; num_classes: classes; image_shape: ``(C, H, W)``.
        num_params: flat parameter count of the student / expert network.
        syn_steps: inner student steps per iteration.
        expert_epochs: epochs of one stored expert trajectory.
        batch_syn: inner minibatch (``None``: the whole synthetic set).
    """
    c, h, w = (int(v) for v in image_shape)
    per_image = c * h * w * _FLOAT
    n_syn = int(ipc) * int(num_classes)
    batch = min(n_syn, int(batch_syn)) if batch_syn else n_syn
    synthetic = 3 * n_syn * per_image
    unroll = (int(syn_steps) + 1) * int(num_params) * _FLOAT + batch * per_image
    experts = (int(expert_epochs) + 1 + 2) * int(num_params) * _FLOAT
    return ResourceEstimate(synthetic=synthetic, unroll=unroll, experts=experts)


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory of ``device`` in bytes (CUDA: free device memory; CPU: available RAM), or
    ``None`` when it cannot be told."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            free, _total = torch.cuda.mem_get_info(device)
        except (RuntimeError, AssertionError):
            return None
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def human(n: float) -> str:
    """``27.6 TB``-style size."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


_FIX = {
    "synthetic set": "lower ipc",
    "unroll": "lower distill.syn_steps or distill.batch_syn",
    "experts": "lower distill.expert_epochs (or the teacher's epochs)",
}


def check_fits(estimate: ResourceEstimate, device: torch.device | str, available: int | None = None) -> None:
    """Raise :class:`ResourceError` when ``estimate`` exceeds the memory available on ``device``.

    Args:
        estimate: from :func:`estimate_distill_bytes`.
        device: where the distillation runs.
        available: free bytes (measured with :func:`available_bytes` when ``None``; when that
            cannot be told the check passes).
    """
    free = available_bytes(device) if available is None else int(available)
    if free is None or estimate.total <= free:
        return
    parts = {"synthetic set": estimate.synthetic, "unroll": estimate.unroll, "experts": estimate.experts}
    biggest = max(parts, key=parts.__getitem__)
    detail = ", ".join(f"{k} {human(v)}" for k, v in parts.items())
    raise ResourceError(
        f"distillation needs at least {human(estimate.total)} ({detail}) but {torch.device(device)} has "
        f"{human(free)} available: {_FIX[biggest]}"
    )
