"""The canvas every project figure is drawn on, and the text shared by the figures.

Figures are built with matplotlib's object API (:class:`matplotlib.figure.Figure` on a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`), so they render headless and never
touch a global backend (no pyplot, no ``matplotlib.use``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width: float, height: float, dpi: int = 100) -> Figure:
    """A figure on its own Agg canvas (``fig.savefig`` works without pyplot)."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def to_hwc_float(img: torch.Tensor) -> np.ndarray:
    """(C, H, W) uint8 or float in [0, 1] -> (H, W, C) float in [0, 1] for imshow ((H, W) if C = 1)."""
    x = img.detach().cpu()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    x = x.clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    return x[..., 0] if x.shape[2] == 1 else x


def blank(ax: Any) -> None:
    """An axis without ticks or frame (an image cell)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def show(ax: Any, img: torch.Tensor) -> None:
    """One (C, H, W) image in an axis, nearest-neighbour (grey for one channel)."""
    arr = to_hwc_float(img)
    ax.imshow(arr, interpolation="nearest", cmap="gray" if arr.ndim == 2 else None)


def add_caption(fig: Figure, text: str | None, y: float = 0.005) -> None:
    """One centred line of small text at the foot of ``fig`` (nothing for empty text)."""
    if text:
        fig.text(0.5, y, text, ha="center", va="bottom", fontsize=8, wrap=True)


MOCK_NOTE = "MOCK SKY (synthetic galaxies, not real GZ2)"


def data_note(*records: Mapping[str, Any] | None) -> str:
    """`` - MOCK SKY (...)`` for figures of the built-in mock sky (a record's ``data_label`` is
    ``mock``, or its variant starts with ``mock_``), else empty: mock results are never titled as GZ2."""
    for record in records:
        if record and (record.get("data_label") == "mock" or str(record.get("variant", "")).startswith("mock_")):
            return f" - {MOCK_NOTE}"
    return ""


def accuracy_text(record: Mapping[str, Any] | None, prefix: str) -> str:
    """``mean ± std %`` of ``<prefix>_acc_mean``/``_std`` in an evaluation record, ``n/a`` without one."""
    if not record or record.get(f"{prefix}_acc_mean") is None:
        return "n/a"
    return f"{record[f'{prefix}_acc_mean']:.1f} ± {record[f'{prefix}_acc_std']:.1f} %"


def empty_figure(message: str) -> Figure:
    """A small figure with one line of text (when there is nothing to plot)."""
    fig = new_figure(6, 3)
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig
