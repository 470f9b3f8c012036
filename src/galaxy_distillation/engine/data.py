"""Small tensor helpers: uint8 <-> normalised float images, device choice."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from galaxy_distillation.errors import UserError

__all__ = [
    "DataError",
    "to_float",
    "to_display",
    "as_float_batch",
    "pick_device",
]


class DataError(UserError, ValueError):
    """Raised for images or options of the wrong kind."""


def _stats(values: Sequence[float], channels: int, name: str, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(list(values), dtype=torch.float32, device=like.device)
    if t.dim() != 1 or t.numel() != channels:
        raise DataError(f"{name} must have {channels} values (one per channel), got {t.numel()}")
    return t.view(1, channels, 1, 1)


def to_float(images_uint8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(N, C, H, W) uint8 in [0, 255] -> float32 ``(x / 255 - mean) / std`` (same device)."""
    if images_uint8.dim() != 4:
        raise DataError(f"expected images of shape (N, C, H, W), got {tuple(images_uint8.shape)}")
    if images_uint8.dtype != torch.uint8:
        raise DataError(f"to_float expects uint8 images, got {images_uint8.dtype}")
    c = images_uint8.shape[1]
    m, s = _stats(mean, c, "mean", images_uint8), _stats(std, c, "std", images_uint8)
    if bool((s <= 0).any()):
        raise DataError("std values must be positive")
    return (images_uint8.to(torch.float32) / 255.0 - m) / s


def to_display(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Inverse of :func:`to_float` without quantisation: (N, C, H, W) float -> float32 in [0, 1] (detached)."""
    if images.dim() != 4:
        raise DataError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    x = images.detach().to(torch.float32)
    c = x.shape[1]
    m, s = _stats(mean, c, "mean", x), _stats(std, c, "std", x)
    return (x * s + m).clamp(0.0, 1.0)


def pick_device(preference: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cpu"``/``"cuda"``/``"cuda:N"``/``"mps"`` as given.

    Raises ``DataError`` if a CUDA device is requested but none is available.
    """
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError as exc:  # pragma: no cover - message path
        raise DataError(f"unknown device {preference!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device {preference!r} requested but CUDA is not available")
    return dev


def as_float_batch(
    x: torch.Tensor,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """Model-ready float32 batch (B, C, H, W): uint8 input is normalised with ``mean``/``std``
    (required then), float input is returned as float32 unchanged."""
    if x.dtype == torch.uint8:
        if mean is None or std is None:
            raise DataError("uint8 images need mean and std to be normalised")
        return to_float(x, mean, std)
    if not x.is_floating_point():
        raise DataError(f"images must be uint8 or floating point, got {x.dtype}")
    return x.to(torch.float32)
