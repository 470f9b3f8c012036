"""Curation report: a per-class montage figure and a JSON-serialisable summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from galaxy_distillation.figures.images import montage_figure

from .errors import ParameterError

#: Lists longer than this are summarised in :func:`curation_report`.
MAX_LIST_LEN: int = 100


def make_montage(
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str],
    per_class: int = 6,
    seed: int = 0,
    mock_sky: bool = False,
) -> Figure:
    """Grid of example images: one row per class, class name on the left.

    Drawn by :func:`galaxy_distillation.figures.images.montage_figure` (object API, no pyplot).

    Args:
        images: (N, C, H, W) uint8, or float in [0, 1].
        labels: (N,) int class indices into ``class_names``.
        class_names: names of the K classes (rows).
        per_class: images per row; a class with fewer shows what it has.
        seed: choice of the examples (``torch.Generator`` seed).
        mock_sky: title the figure as the built-in mock sky (synthetic galaxies).

    Returns:
        The figure (K rows x per_class columns).
    """
    if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ParameterError(
            f"make_montage expects images (N, C, H, W) and labels (N,), got "
            f"{tuple(images.shape)} and {tuple(labels.shape)}"
        )
    if per_class < 1 or len(class_names) < 1:
        raise ParameterError("make_montage needs per_class >= 1 and at least one class name")
    return montage_figure(images, labels, class_names, per_class=per_class, seed=seed, mock_sky=mock_sky)


def to_plain(value: Any, max_list: int = MAX_LIST_LEN) -> Any:
    """Convert numpy/torch scalars, arrays, tuples, paths to plain JSON types.

    Lists longer than ``max_list`` become ``{"n": len, "first": [...max_list]}``.
    """
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, max_list) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple, set)):
        items = [to_plain(v, max_list) for v in value]
        if len(items) > max_list:
            return {"n": len(items), "first": items[:max_list]}
        return items
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def curation_report(
    catalogue_info: Mapping | None = None,
    label_stats: Mapping | None = None,
    selection_report: Mapping | None = None,
    image_reports: Mapping[str, Mapping] | None = None,
    stats: Mapping | None = None,
    **extra: Any,
) -> dict:
    """Merge the curation step reports into one JSON-serialisable dict.

    Args:
        catalogue_info: from :func:`~.catalogue.read_vote_catalogue`.
        label_stats: from :func:`~.labels.label_galaxies`.
        selection_report: from :func:`~.selection.select_and_split`.
        image_reports: split name -> report of :func:`~.paths.resolve_image_paths`
            or :func:`~.images.load_split_tensors` (e.g. ``{"resolve": ..., "train": ...}``).
        stats: from :func:`~.stats.channel_stats`.
        **extra: further plain entries (e.g. parameters).

    Returns:
        ``{"catalogue": ..., "labels": ..., "selection": ..., "images": {...},
        "channel_stats": ..., **extra}`` with only dict/list/str/int/float/bool/None;
        long lists (e.g. loaded ids) are summarised as ``{"n", "first"}``.
    """
    merged: dict[str, Any] = {
        "catalogue": catalogue_info or {},
        "labels": label_stats or {},
        "selection": selection_report or {},
        "images": dict(image_reports or {}),
        "channel_stats": stats or {},
    }
    merged.update(extra)
    return to_plain(merged)


def summary_line(report: Mapping[str, Any]) -> tuple[str, int]:
    """One console line of what curation dropped (the details are in the JSON report), and the
    total number of dropped rows and images."""
    cat = report.get("catalogue", {}) or {}
    images = report.get("images", {}) or {}
    mapping = images.get("mapping", {}) or {}
    located = [images.get(k, {}) or {} for k in ("located_train", "located_test")]
    loaded = [images.get(k, {}) or {} for k in ("train", "test")]
    no_image = sum(int(r.get("n_no_mapping", 0)) + int(r.get("n_no_file", 0)) for r in located)
    unreadable = sum(int(r.get("n_unreadable", 0)) for r in loaded)
    n_cat = int(cat.get("n_dropped_bad_id", 0)) + int(cat.get("n_dropped_nan", 0)) + int(cat.get("n_duplicates", 0))
    total = n_cat + int(mapping.get("n_dropped_bad_id", 0)) + no_image + unreadable
    parts = [
        f"catalogue rows dropped {int(cat.get('n_dropped_bad_id', 0)) + int(cat.get('n_dropped_nan', 0))}"
        f" (bad id {int(cat.get('n_dropped_bad_id', 0))}, bad fractions {int(cat.get('n_dropped_nan', 0))}),"
        f" duplicates {int(cat.get('n_duplicates', 0))}",
        f"mapping rows dropped {int(mapping.get('n_dropped_bad_id', 0))}",
        f"selected galaxies without image {no_image}",
        f"unreadable images {unreadable}",
    ]
    return "curation: " + "; ".join(parts) + " (details: curation_report.json)", total
