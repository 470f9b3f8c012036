"""Figure helpers shared by the curation montage and the distilled-image grid (no Kedro)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure


def to_hwc_float(img: torch.Tensor) -> np.ndarray:
    """(C, H, W) uint8 or float in [0, 1] -> (H, W, C) float in [0, 1] for imshow ((H, W) if C = 1)."""
    x = img.detach().cpu()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    x = x.clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    return x[..., 0] if x.shape[2] == 1 else x


def class_grid(rows: Sequence[Sequence[torch.Tensor]], row_labels: Sequence[str], columns: int,
               title: str | None = None) -> Figure:
    """One row of images per class, the row's label on the left, empty cells where a row is short.

    Uses ``matplotlib.figure.Figure`` directly (no pyplot), so it works headless.

    Args:
        rows: per class, its (C, H, W) images (uint8, or float in [0, 1]).
        row_labels: one label per row.
        columns: cells per row.
        title: optional figure title.
    """
    fig = Figure(figsize=(1.3 * columns + 2.2, 1.3 * len(rows) + (0.4 if title else 0.0)), dpi=100)
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for r, images in enumerate(rows):
        for j in range(columns):
            ax = axes[r][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(images):
                img = to_hwc_float(images[j])
                ax.imshow(img, interpolation="nearest", cmap="gray" if img.ndim == 2 else None)
        axes[r][0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
    top = 0.99
    if title:
        fig.suptitle(title, fontsize=10)
        top = 1.0 - 0.5 / (1.3 * len(rows) + 0.4)
    fig.subplots_adjust(left=0.25, right=0.99, top=top, bottom=0.01, wspace=0.04, hspace=0.04)
    return fig
