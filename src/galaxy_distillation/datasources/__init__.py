"""Benchmark-mode data sources: CIFAR-10/100 from a local copy and any labelled image folder.

Every loader returns a :class:`LabelledImages` (uint8 ``(N, C, H, W)`` images + int64
labels + class names), the same in-memory form as the curated Galaxy Zoo 2 set, so the
teacher / distillation / evaluation stages do not care where the data came from.
Galaxy Zoo 2 itself goes through the curation pipeline, not through this package.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .base import DataSourceError, DataSourceWarning, LabelledImages
from .cifar import load_cifar
from .imagefolder import IMAGE_EXTENSIONS, load_image_folder
from .synthetic_folder import make_toy_image_folder

__all__ = [
    "DATASOURCES",
    "IMAGE_EXTENSIONS",
    "DataSourceError",
    "DataSourceWarning",
    "LabelledImages",
    "load_cifar",
    "load_datasource",
    "load_image_folder",
    "make_toy_image_folder",
]


def _cifar10(**kwargs: Any) -> LabelledImages:
    return load_cifar("cifar10", **kwargs)


def _cifar100(**kwargs: Any) -> LabelledImages:
    return load_cifar("cifar100", **kwargs)


_LOADERS: dict[str, tuple[Callable[..., LabelledImages], Callable[..., LabelledImages]]] = {
    # dataset name: (callable, function whose signature lists the accepted keywords)
    "cifar10": (_cifar10, load_cifar),
    "cifar100": (_cifar100, load_cifar),
    "imagefolder": (load_image_folder, load_image_folder),
}
DATASOURCES: tuple[str, ...] = tuple(_LOADERS)


def _accepted(fn: Callable[..., Any], skip: tuple[str, ...]) -> list[str]:
    """Keyword names ``fn`` accepts, minus ``skip``."""
    return [p for p in inspect.signature(fn).parameters if p not in skip]


def load_datasource(dataset: str, **kwargs: Any) -> LabelledImages:
    """Load a benchmark data source by name.

    Args:
        dataset: ``"cifar10"``, ``"cifar100"`` (keywords of :func:`load_cifar` except
            ``name``: ``data_root``, ``download``; checksums are always verified) or
            ``"imagefolder"`` (keywords of :func:`load_image_folder`: ``root``,
            ``image_size``, ``test_fraction``, ``seed``, ``min_per_class``, ``progress``).
            Case-insensitive. ``"gz2"`` is not handled here (curation pipeline).
        **kwargs: passed to the loader.

    Returns:
        The loaded :class:`LabelledImages`.

    Raises:
        DataSourceError: unknown dataset (lists the allowed ones), unknown or missing
            keywords (lists the accepted ones), or any loader error.
    """
    key = str(dataset).strip().lower()
    if key not in _LOADERS:
        hint = " (gz2 is loaded by the curation pipeline)" if key in ("gz2", "galaxy_zoo_2") else ""
        raise DataSourceError(
            f"unknown data source {dataset!r}{hint}; allowed: {', '.join(DATASOURCES)}"
        )
    loader, signature_of = _LOADERS[key]
    skip = ("name",) if signature_of is load_cifar else ()
    accepted = _accepted(signature_of, skip)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise DataSourceError(
            f"unknown parameter(s) {', '.join(unknown)} for data source {key!r}; "
            f"accepted: {', '.join(accepted)}"
        )
    params = inspect.signature(signature_of).parameters
    missing = [
        p for p in accepted if params[p].default is inspect.Parameter.empty and p not in kwargs
    ]
    if missing:
        raise DataSourceError(f"data source {key!r} needs parameter(s): {', '.join(missing)}")
    return loader(**kwargs)
