"""The common in-memory form every data source is turned into.

Whatever the origin (curated Galaxy Zoo 2, CIFAR-10/100, a user's image folder), the
teacher / distillation / evaluation stages receive a :class:`LabelledImages`: raw
``uint8`` image tensors plus integer labels and class names. Normalisation (mean/std,
ZCA whitening) is applied later by the engine, never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from galaxy_distillation.errors import UserError

__all__ = ["DataSourceError", "DataSourceWarning", "LabelledImages"]


class DataSourceError(UserError):
    """A data source could not be loaded; the message is one line saying why and what to do."""


class DataSourceWarning(UserWarning):
    """Something was skipped while loading a data source (recorded in the report too)."""


def _check_images(x: torch.Tensor, what: str) -> None:
    """Raise :class:`DataSourceError` unless ``x`` is a ``(N, C, H, W)`` uint8 tensor."""
    if not isinstance(x, torch.Tensor):
        raise DataSourceError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise DataSourceError(f"{what} must have dtype uint8, got {x.dtype}")
    if x.ndim != 4:
        raise DataSourceError(f"{what} must have shape (N, C, H, W), got {tuple(x.shape)}")


def _check_labels(y: torch.Tensor, n: int, num_classes: int, what: str) -> None:
    """Raise :class:`DataSourceError` unless ``y`` is ``(n,)`` int64 in ``[0, num_classes)``."""
    if not isinstance(y, torch.Tensor):
        raise DataSourceError(f"{what} must be a torch.Tensor, got {type(y).__name__}")
    if y.dtype != torch.int64:
        raise DataSourceError(f"{what} must have dtype int64, got {y.dtype}")
    if y.shape != (n,):
        raise DataSourceError(f"{what} must have shape ({n},), got {tuple(y.shape)}")
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataSourceError(
            f"{what} must lie in [0, {num_classes}), got range [{int(y.min())}, {int(y.max())}]"
        )


@dataclass
class LabelledImages:
    """A labelled image data set with a fixed train/test split, held in memory.

    Attributes:
        train_x: ``(N, C, H, W)`` uint8 training images.
        train_y: ``(N,)`` int64 training labels in ``[0, num_classes)``.
        test_x: ``(M, C, H, W)`` uint8 test images (same ``C, H, W`` as ``train_x``).
        test_y: ``(M,)`` int64 test labels.
        class_names: one name per class; label ``k`` means ``class_names[k]``.
        name: ``"cifar10"``, ``"cifar100"``, ``"imagefolder:<folder name>"``, ``"gz2"``...
        report: JSON-serialisable facts about the load (counts per class, skipped files...).

    Raises:
        DataSourceError: on construction, if shapes, dtypes or label ranges are inconsistent.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list[str]
    name: str
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.class_names = [str(c) for c in self.class_names]
        if len(self.class_names) < 2:
            raise DataSourceError(
                f"{self.name}: need at least 2 classes, got {len(self.class_names)}"
            )
        if len(set(self.class_names)) != len(self.class_names):
            raise DataSourceError(f"{self.name}: class names are not unique")
        _check_images(self.train_x, "train_x")
        _check_images(self.test_x, "test_x")
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise DataSourceError(
                f"{self.name}: train images {tuple(self.train_x.shape[1:])} and test images "
                f"{tuple(self.test_x.shape[1:])} differ in (C, H, W)"
            )
        k = len(self.class_names)
        _check_labels(self.train_y, self.train_x.shape[0], k, "train_y")
        _check_labels(self.test_y, self.test_x.shape[0], k, "test_y")

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    @property
    def channels(self) -> int:
        """Number of image channels ``C``."""
        return int(self.train_x.shape[1])

    @property
    def im_size(self) -> tuple[int, int]:
        """Image size ``(H, W)``."""
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])

    def class_counts(self, split: str = "train") -> dict[str, int]:
        """Images per class name in ``split`` (``"train"`` or ``"test"``)."""
        if split not in ("train", "test"):
            raise DataSourceError(f"split must be 'train' or 'test', got {split!r}")
        y = self.train_y if split == "train" else self.test_y
        counts = torch.bincount(y, minlength=self.num_classes).tolist()
        return {c: int(n) for c, n in zip(self.class_names, counts)}

    def __repr__(self) -> str:
        return (
            f"LabelledImages(name={self.name!r}, classes={self.num_classes}, "
            f"train={tuple(self.train_x.shape)}, test={tuple(self.test_x.shape)})"
        )
