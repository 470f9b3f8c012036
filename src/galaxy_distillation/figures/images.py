"""Image figures: curated galaxies by class, the distilled sets (the paper's Figures 1 and 4)
and the confusion matrices of an evaluation.

* :func:`class_grid` / :func:`montage_figure`: curated galaxies, one row per class.
* :func:`distilled_grid_figure`: the paper's Figures 1 and 4 (classes as columns with their
  names, the starting image beside each prototype, test accuracy in the caption).
* :func:`confusion_figure`: per evaluated set (distilled, random, full) the row-normalised
  confusion matrix (mean over the nets) with the per-class accuracy on its diagonal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from galaxy_distillation.figures.canvas import accuracy_text, add_caption, blank, data_note, empty_figure, new_figure, show


def class_grid(rows: Sequence[Sequence[torch.Tensor]], row_labels: Sequence[str], columns: int,
               title: str | None = None, caption: str | None = None) -> Figure:
    """One row of images per class, the row's label on the left, empty cells where a row is short.

    Args:
        rows: per class, its (C, H, W) images (uint8, or float in [0, 1]).
        row_labels: one label per row.
        columns: cells per row.
        title: optional figure title.
        caption: optional line under the grid.
    """
    head, foot = (0.45 if title else 0.0), (0.35 if caption else 0.0)
    height = 1.3 * len(rows) + head + foot
    fig = new_figure(1.3 * columns + 2.2, height)
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for r, images in enumerate(rows):
        for j in range(columns):
            blank(axes[r][j])
            if j < len(images):
                show(axes[r][j], images[j])
        axes[r][0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, y=1.0 - 0.08 / height)
    add_caption(fig, caption)
    width = 1.3 * columns + 2.2
    fig.subplots_adjust(left=2.1 / width, right=0.99, top=1.0 - (head + 0.05) / height, bottom=(foot + 0.05) / height,
                        wspace=0.04, hspace=0.04)
    return fig


def montage_figure(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], per_class: int = 6,
                   seed: int = 0, mock_sky: bool = False) -> Figure:
    """Example curated galaxies, one row per class (chosen with ``torch.Generator(seed)``);
    titled "mock sky (synthetic galaxies)" when the data is the built-in mock sky."""
    gen = torch.Generator().manual_seed(int(seed))
    rows = []
    for c in range(len(class_names)):
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) > per_class:
            idx = idx[torch.randperm(len(idx), generator=gen)[:per_class]]
        rows.append([images[int(i)] for i in idx])
    size = f"{images.shape[-1]}x{images.shape[-2]}"
    title = ("Curated training galaxies: MOCK SKY (synthetic galaxies, not real GZ2)" if mock_sky
             else "Curated GZ2 training galaxies")
    caption = f"{per_class} random examples per class of {len(labels)} ({size} px), rows = the 9 merged GZ2 classes"
    return class_grid(rows, [f"{c}: {name}" for c, name in enumerate(class_names)], per_class,
                      title=title, caption=caption)


def distilled_grid_figure(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                          initial: torch.Tensor | None = None, meta: Mapping[str, Any] | None = None,
                          results: Mapping[str, Any] | None = None, max_per_class: int = 10,
                          show_initial: bool = False) -> Figure:
    """The paper's Figures 1 and 4 at one image per class: one column per class (its name on
    top), the starting image above the prototype it became. With several images per class: a
    row per class (its name on the left) with its prototypes side by side; ``show_initial`` adds
    each class's starting images as a second row under it.

    Args:
        images: distilled images in display colours, (N, C, H, W) float in [0, 1].
        labels: (N,) class of each image.
        class_names: the column headers.
        initial: the starting images, same order as ``images`` (None: distilled rows only).
        meta: the distilled set's meta (variant, method, ipc, init, iterations).
        results: the variant's evaluation results (test accuracy for the caption).
        max_per_class: at most this many images per class are shown.
        show_initial: with several images per class, also show the starting images.
    """
    meta = dict(meta or {})
    n_classes = len(class_names)
    per_class = min(int(max_per_class), max(int((labels == c).sum()) for c in range(n_classes)))
    if per_class > 1:
        return _prototype_rows(images, labels, class_names, per_class, initial if show_initial else None, meta,
                               results)
    kinds = [("initial", initial), ("distilled", images)] if initial is not None else [("distilled", images)]
    n_rows = per_class * len(kinds)
    cell = 1.05
    head, foot = 0.8, 0.45
    fig = new_figure(cell * n_classes + 1.2, cell * n_rows + head + foot)
    axes = fig.subplots(n_rows, n_classes, squeeze=False)
    for c in range(n_classes):
        idx = torch.nonzero(labels == c).flatten()[:per_class].tolist()
        for k in range(per_class):
            for j, (kind, source) in enumerate(kinds):
                ax = axes[k * len(kinds) + j][c]
                blank(ax)
                if k < len(idx):
                    show(ax, source[idx[k]])
                if c == 0:
                    ax.set_ylabel(kind if per_class == 1 else f"{kind} {k + 1}", fontsize=8)
        axes[0][c].set_title(class_names[c].replace(" ", "\n", 1) if len(class_names[c]) > 12 else class_names[c],
                             fontsize=7.5)
    title, caption = _grid_text(labels, meta, results, per_class)
    fig.suptitle(title, fontsize=10, y=1.0 - 0.1 / (cell * n_rows + head + foot))
    add_caption(fig, caption)
    height = cell * n_rows + head + foot
    fig.subplots_adjust(left=1.0 / (cell * n_classes + 1.2), right=0.995, top=1.0 - head / height,
                        bottom=foot / height, wspace=0.05, hspace=0.05)
    return fig


_SET_TITLES = {"distilled": "distilled set", "random": "random real", "full": "full training set"}


def confusion_figure(results: Mapping[str, Any]) -> Figure:
    """Row-normalised confusion matrices (mean over the nets, ``[true][predicted]``) of the
    distilled set, random real and the full training set, side by side, each cell in % of the
    true class's test images; panel titles carry the overall accuracy and the protocol."""
    classes = dict(results.get("classes") or {})
    names = list(classes.get("class_names") or [])
    sets = [k for k in ("distilled", "random", "full") if classes.get(k)]
    if not sets or not names:
        return empty_figure("no per-class records in this evaluation")
    k = len(names)
    side = 0.42 * k + 1.6
    fig = new_figure(side * len(sets) + 2.6, side + 1.4)
    axes = fig.subplots(1, len(sets), squeeze=False)[0]
    short = [n if len(n) <= 20 else n[:19] + "…" for n in names]
    protocol = {"distilled": (results.get("n_nets"), results.get("epochs")),
                "random": (results.get("n_nets"), results.get("epochs")),
                "full": (results.get("full_n_nets"), results.get("full_epochs"))}
    for ax, key in zip(axes, sets, strict=True):
        matrix = 100.0 * np.asarray(classes[key]["confusion"], dtype=float)
        ax.imshow(matrix, cmap="Blues", vmin=0, vmax=100)
        for i in range(k):
            for j in range(k):
                if matrix[i, j] >= 0.5:
                    ax.text(j, i, f"{matrix[i, j]:.0f}", ha="center", va="center", fontsize=6.5,
                            color="white" if matrix[i, j] > 55 else "black")
        nets, epochs = protocol[key]
        ax.set_title(f"{_SET_TITLES[key]}: {accuracy_text(results, key)}\n({nets} nets x {epochs} epochs)", fontsize=8.5)
        ax.set_xticks(range(k), [str(c) for c in range(k)], fontsize=7)
        ax.set_yticks(range(k), [f"{c}: {n}" for c, n in enumerate(short)] if key == sets[0] else
                      [str(c) for c in range(k)], fontsize=7)
        ax.set_xlabel("predicted class", fontsize=8)
    axes[0].set_ylabel("true class", fontsize=8)
    fig.suptitle(f"{results.get('variant', '')}: confusion on the test set (% of each true class, mean over nets)"
                 + data_note(results), fontsize=10)
    fig.subplots_adjust(left=2.4 / (side * len(sets) + 2.6), right=0.99, top=1.0 - 0.9 / (side + 1.4),
                        bottom=0.6 / (side + 1.4), wspace=0.15)
    return fig


def _grid_text(labels: torch.Tensor, meta: Mapping[str, Any], results: Mapping[str, Any] | None, per_class: int
               ) -> tuple[str, str | None]:
    method, init = str(meta.get("method", "")).upper(), meta.get("init")
    title = (f"{meta.get('variant', '')}: {method} distilled set, {meta.get('ipc', per_class)} image(s) per class"
             + (f" ({init} init)" if init else "") + data_note(meta, results))
    lines = []
    if results:
        lines.append(f"Test accuracy of nets trained on these {len(labels)} images: {accuracy_text(results, 'distilled')} "
                     f"({results.get('n_nets', '?')} nets x {results.get('epochs', '?')} epochs); random real "
                     f"{accuracy_text(results, 'random')}, full training set {accuracy_text(results, 'full')}.")
    if meta.get("iterations"):
        lines.append(f"{meta['iterations']} distillation iterations (stop: {meta.get('stop_reason', '?')}).")
    return title, "\n".join(lines) or None


def _prototype_rows(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], per_class: int,
                    initial: torch.Tensor | None, meta: Mapping[str, Any], results: Mapping[str, Any] | None
                    ) -> Figure:
    """Several images per class: a row per class, its prototypes side by side (and, with
    ``initial``, the images they started from in a row under it)."""
    rows, names = [], []
    for c, name in enumerate(class_names):
        idx = torch.nonzero(labels == c).flatten()[:per_class].tolist()
        rows.append([images[i] for i in idx])
        names.append(f"{c}: {name}")
        if initial is not None:
            rows.append([initial[i] for i in idx])
            names.append("  (initial)")
    title, caption = _grid_text(labels, meta, results, per_class)
    return class_grid(rows, names, per_class, title=title, caption=caption)
