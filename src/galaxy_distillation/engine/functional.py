"""Flat-parameter functional view of a module.

Trajectory matching treats a network's parameters as one 1-D vector ``theta`` of length
``P`` (the order is ``module.named_parameters()``). :class:`FlatModel` applies such a
vector with :func:`torch.func.functional_call`, so gradients flow to both ``theta`` and the
inputs (this replaces MTT's hand-written re-parametrisation module).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["FlatModelError", "FlatModel"]


class FlatModelError(ValueError):
    """Raised when a flat parameter vector does not match the module."""


class FlatModel:
    """Treat a module's parameters as ONE flat 1-D vector and apply it functionally.

    Attributes:
        module: the wrapped module (its own parameters are only used by :meth:`flat_params`
            and written by :meth:`load_flat`).
        names: parameter names in flattening order.
        shapes: parameter shapes in flattening order.
        numel: total number of scalars P.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        named = list(module.named_parameters())
        if not named:
            raise FlatModelError("module has no parameters")
        self.names: list[str] = [n for n, _ in named]
        self.shapes: list[torch.Size] = [p.shape for _, p in named]
        self.sizes: list[int] = [p.numel() for _, p in named]
        self.numel: int = int(sum(self.sizes))

    def flat_params(self) -> torch.Tensor:
        """Detached 1-D copy (P,) of the module's current parameters (on the module's device)."""
        return torch.cat([p.detach().reshape(-1) for p in self.module.parameters()]).clone()

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``flat`` (P,) into a name -> view dict with the parameters' shapes (differentiable)."""
        if flat.dim() != 1 or flat.numel() != self.numel:
            raise FlatModelError(f"flat parameter vector must have shape ({self.numel},), got {tuple(flat.shape)}")
        chunks = torch.split(flat, self.sizes)
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes)}

    def forward(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of the module with parameters ``flat`` (P,) on ``x`` (B, C, H, W).

        Differentiable w.r.t. ``flat`` and ``x``. Buffers (e.g. batch-norm running stats) are
        the module's own; batch-norm in training mode updates them as usual.
        """
        return functional_call(self.module, self.unflatten(flat), (x,))

    __call__ = forward

    def load_flat(self, flat: torch.Tensor) -> None:
        """Copy ``flat`` (P,) into the module's parameters (no autograd history)."""
        params = self.unflatten(flat.detach())
        with torch.no_grad():
            for name, p in self.module.named_parameters():
                p.copy_(params[name].to(device=p.device, dtype=p.dtype))
