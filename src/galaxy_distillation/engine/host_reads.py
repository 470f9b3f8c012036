"""The backward pass of a distillation iteration and the scalars the host reads from it.

:func:`backward_one_read` (the default) reads the loss, the step size, the finiteness of both
gradients and the STM validation loss in ONE device-to-host transfer; :func:`backward_reads` is
the earlier path (each scalar read on its own, no backward for a non-finite loss), kept for the
before/after figures of benchmarks/gpu_suite.py. Both take the same decisions on the same values.
"""

from __future__ import annotations

import math

import torch

__all__ = ["backward_one_read", "backward_reads", "decide", "read_scalars"]


def backward_one_read(loss: torch.Tensor, alpha: torch.Tensor, val: torch.Tensor | float | None,
                      images: torch.Tensor, lr_param: torch.Tensor) -> tuple[bool, float, float, float | None]:
    """Back-propagate to ``images`` and ``lr_param`` unconditionally and read every scalar at once.

    A non-finite loss gives non-finite gradients, so the step is rejected exactly as when the
    backward pass was skipped for it.

    Returns:
        ``(ok, loss, alpha, val)``: ``ok`` = loss, alpha and both gradients finite.
    """
    loss.backward(inputs=[images, lr_param])  # not into theta_0: skips step 0's Hessian product
    host = torch.stack(read_scalars(loss, alpha, val, images, lr_param)).tolist()  # the iteration's one sync
    return decide(host, val is not None)


def read_scalars(loss: torch.Tensor, alpha: torch.Tensor, val: torch.Tensor | float | None, images: torch.Tensor,
                 lr_param: torch.Tensor, pad: bool = False) -> list[torch.Tensor]:
    """The 0-d device tensors an iteration reads after its backward pass: loss, step size, whether
    each gradient is finite (1/0), and the STM validation loss when there is one (``pad``: NaN
    in its place otherwise, so that several runs' rows stack). Read them with one ``tolist``."""
    dtype, device = images.dtype, images.device
    finite = [torch.isfinite(g).all() if g is not None else torch.zeros((), dtype=torch.bool, device=device)
              for g in (images.grad, lr_param.grad)]
    scalars = [loss.detach().to(dtype).reshape(()), alpha.detach().to(dtype).reshape(()), *[f.to(dtype) for f in finite]]
    if val is None and pad:
        val = torch.full((), math.nan, device=device)
    if val is not None:
        if not isinstance(val, torch.Tensor):  # a float (e.g. a test's stand-in)
            val = torch.tensor(float(val), device=device)
        scalars.append(val.detach().to(dtype).reshape(()))
    return scalars


def decide(host: list[float], has_val: bool) -> tuple[bool, float, float, float | None]:
    """``(ok, loss, alpha, val)`` from the values :func:`read_scalars` gave: ``ok`` = loss, alpha and
    both gradients finite."""
    ok = math.isfinite(host[0]) and math.isfinite(host[1]) and host[2] == 1.0 and host[3] == 1.0
    return ok, host[0], host[1], (host[4] if has_val else None)


def backward_reads(loss: torch.Tensor, alpha: torch.Tensor, val: torch.Tensor | float | None,
                   images: torch.Tensor, lr_param: torch.Tensor) -> tuple[bool, float, float, float | None]:
    """The earlier path: each scalar read on its own (a host sync each); no backward for a non-finite loss."""
    val_f = None if val is None else float(val)
    alpha_f = float(alpha)
    ok = bool(torch.isfinite(loss).all()) and math.isfinite(alpha_f)
    if ok:
        loss.backward(inputs=[images, lr_param])
        ok = all(g is not None and bool(torch.isfinite(g).all()) for g in (images.grad, lr_param.grad))
    return ok, float(loss.detach()), alpha_f, val_f
