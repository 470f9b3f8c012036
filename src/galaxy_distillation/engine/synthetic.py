"""Initial synthetic sets and random real subsets (class-balanced, seeded).

Both functions return images in class-major order: with ``ipc = 2`` and 3 classes the
labels are ``[0, 0, 1, 1, 2, 2]``. Labels are fixed hard labels (int64).
"""

from __future__ import annotations

import torch

__all__ = ["SyntheticInitError", "init_synthetic", "random_real_subset", "class_major_labels"]

_INITS = ("real", "noise")


class SyntheticInitError(ValueError):
    """Bad input to :func:`init_synthetic` / :func:`random_real_subset`."""


def class_major_labels(num_classes: int, ipc: int) -> torch.Tensor:
    """Hard labels ``[0]*ipc + [1]*ipc + ...``, shape ``(num_classes * ipc,)`` int64."""
    return torch.arange(num_classes, dtype=torch.long).repeat_interleave(ipc)


def _check(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, ipc: int) -> None:
    if train_x.dim() != 4:
        raise SyntheticInitError(f"train_x must be (N, C, H, W), got shape {tuple(train_x.shape)}")
    if train_y.dim() != 1 or train_y.shape[0] != train_x.shape[0]:
        raise SyntheticInitError(
            f"train_y must be (N,) with N={train_x.shape[0]}, got shape {tuple(train_y.shape)}"
        )
    if num_classes < 1:
        raise SyntheticInitError(f"num_classes must be >= 1, got {num_classes}")
    if ipc < 1:
        raise SyntheticInitError(f"ipc must be >= 1, got {ipc}")
    if train_y.numel() and (int(train_y.min()) < 0 or int(train_y.max()) >= num_classes):
        raise SyntheticInitError(f"train_y has labels outside [0, {num_classes})")


def random_real_subset(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    num_classes: int,
    ipc: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``ipc`` distinct real images per class without replacement.

    Args:
        train_x: ``(N, C, H, W)`` images (any dtype, any device).
        train_y: ``(N,)`` integer labels in ``[0, num_classes)``.
        num_classes: number of classes.
        ipc: images per class.
        generator: CPU ``torch.Generator`` supplying every random draw.

    Returns:
        ``(images, labels)``: ``(num_classes * ipc, C, H, W)`` copies of the chosen images
        (same dtype/device as ``train_x``) and ``(num_classes * ipc,)`` int64 labels, class-major.

    Raises:
        SyntheticInitError: a class has fewer than ``ipc`` images, or shapes/labels are wrong.
    """
    _check(train_x, train_y, num_classes, ipc)
    labels_cpu = train_y.detach().to("cpu", torch.long)
    chosen: list[torch.Tensor] = []
    for c in range(num_classes):
        idx = torch.nonzero(labels_cpu == c, as_tuple=False).flatten()
        if idx.numel() < ipc:
            raise SyntheticInitError(
                f"class {c} has {idx.numel()} training images, fewer than ipc={ipc}"
            )
        perm = torch.randperm(idx.numel(), generator=generator)[:ipc]
        chosen.append(idx[perm])
    index = torch.cat(chosen).to(train_x.device)
    return train_x[index].clone(), class_major_labels(num_classes, ipc).to(train_x.device)


def init_synthetic(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    num_classes: int,
    ipc: int,
    init: str,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial synthetic set for distillation.

    Args:
        train_x: ``(N, C, H, W)`` normalised float training images.
        train_y: ``(N,)`` labels.
        num_classes: number of classes.
        ipc: synthetic images per class.
        init: ``"real"`` (random real images per class) or ``"noise"`` (standard Gaussian,
            i.e. noise at the scale of normalised images).
        generator: CPU ``torch.Generator``; the only source of randomness.

    Returns:
        ``(images, labels)``: float32 ``(num_classes * ipc, C, H, W)`` on ``train_x.device``
        and int64 class-major labels ``(num_classes * ipc,)``.

    Raises:
        SyntheticInitError: unknown ``init``, bad shapes, or a class with fewer than ``ipc``
            images for ``init="real"``.
    """
    if init not in _INITS:
        raise SyntheticInitError(f"unknown init {init!r}; expected one of {_INITS}")
    _check(train_x, train_y, num_classes, ipc)
    if init == "real":
        images, labels = random_real_subset(train_x, train_y, num_classes, ipc, generator)
        return images.to(torch.float32), labels
    shape = (num_classes * ipc, *train_x.shape[1:])
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    return noise.to(train_x.device), class_major_labels(num_classes, ipc).to(train_x.device)
