"""Figures of the insight report: a card per class and a summary heatmap."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["card", "heatmap"]


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(np.asarray(image, dtype=np.float64)), 0, 1).transpose(1, 2, 0)


def _profiles(frame: pd.DataFrame, prefix: str) -> np.ndarray:
    cols = sorted((c for c in frame.columns if c.startswith(prefix) and c[len(prefix):].isdigit()),
                  key=lambda c: int(c[len(prefix):]))
    return frame[cols].to_numpy(dtype=np.float64)


def card(k: int, name: str, prototypes: dict[str, Any], table: pd.DataFrame, real_diagnostics: pd.DataFrame,
         reals: np.ndarray, real_labels: np.ndarray, nearest: Sequence[Sequence[int]],
         diagnostics: Sequence[str]) -> Figure:
    """One class: initial image, prototype, class mean, prototype minus mean, its nearest real
    galaxies; radial brightness and colour profiles against the real 16-84 % band; the
    prototype(s) placed on the class's distributions (percentile; 5-95 % and 25-75 % shaded)."""
    ids = prototypes["ids"]
    rows = np.flatnonzero(ids["class"].to_numpy() == k)
    first = int(rows[0])
    members = real_labels == k
    mean = reals[members].mean(axis=0) if members.any() else np.zeros_like(prototypes["images"][first])
    proto = prototypes["images"][first]
    panels: list[tuple[str, np.ndarray, str | None]] = []
    if prototypes.get("initial_images") is not None:
        panels.append(("initial image", _rgb(prototypes["initial_images"][first]), None))
    panels += [("prototype", _rgb(proto), None), ("class mean (real)", _rgb(mean), None),
               ("prototype - mean", np.nan_to_num(proto.mean(0) - mean.mean(0)), "RdBu_r")]
    panels += [(f"nearest real {j + 1}", _rgb(reals[i]), None) for j, i in enumerate(nearest[first])]
    fig = Figure(figsize=(max(9.0, 1.5 * len(panels)), 5.6))
    grid = fig.add_gridspec(2, len(panels), height_ratios=[1, 1.6])
    for j, (title, image, cmap) in enumerate(panels):
        ax = fig.add_subplot(grid[0, j])
        if cmap:
            lim = float(np.abs(image).max()) or 1.0
            ax.imshow(image, cmap=cmap, vmin=-lim, vmax=lim)
        else:
            ax.imshow(image)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    lower = grid[1, :].subgridspec(1, 3, width_ratios=[1, 1, 1.3], wspace=0.35)
    real_k = real_diagnostics[real_diagnostics["class"] == k]
    for j, (prefix, label) in enumerate((("profile_", "brightness (display, sky-subtracted)"),
                                        ("colour_profile_", "colour -2.5 log10(B/R) (mag)"))):
        ax = fig.add_subplot(lower[0, j])
        band = _profiles(real_k, prefix)
        mine = _profiles(prototypes["protos"].iloc[rows], prefix)
        bins = band.shape[1] if band.size else mine.shape[1]
        x = (np.arange(bins) + 0.5) * proto.shape[-1] / 2 / bins  # bin centres (px)
        if band.size and np.isfinite(band).any():
            with warnings.catch_warnings():  # bins without light have no colour: all NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                lo, med, hi = np.nanpercentile(band, [16, 50, 84], axis=0)
            ax.fill_between(x, lo, hi, color="0.8", label="real 16-84 %")
            ax.plot(x, med, color="0.45", lw=1, label="real median")
        for r, prof in enumerate(mine):
            ax.plot(x, prof, color="C3", lw=1.5, label="prototype" if r == 0 else None)
        if "initial" in prototypes:
            ax.plot(x, _profiles(prototypes["initial"].iloc[rows[:1]], prefix)[0], color="C0", ls="--", lw=1,
                    label="initial")
        ax.set_xlabel("radius (px)", fontsize=8)
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=7)
        if j == 0:
            ax.legend(fontsize=6)
    ax = fig.add_subplot(lower[0, 2])
    sub = table[(table["class"] == k) & (table["diagnostic"].isin(diagnostics))]
    for y, d in enumerate(diagnostics):
        ax.add_patch(_box(0.05, 0.95, y, "0.88"))
        ax.add_patch(_box(0.25, 0.75, y, "0.75"))
        rows_d = sub[sub["diagnostic"] == d]
        for _, r in rows_d.iterrows():
            if np.isfinite(r["percentile"]):
                ax.plot(r["percentile"], y, "o", color="C3", ms=6)
                if "initial_percentile" in r and np.isfinite(r["initial_percentile"]):
                    ax.plot(r["initial_percentile"], y, "o", mfc="none", color="C0", ms=6)
        value = rows_d["value"].iloc[0] if len(rows_d) else np.nan
        text = f"{value:.3g}" if np.isfinite(value) else "n/m"
        ax.text(1.03, y, text, va="center", fontsize=7)
    ax.set_yticks(range(len(diagnostics)), list(diagnostics), fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(diagnostics) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("percentile within the real class (o initial)", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.suptitle(f"class {k}: {name}", fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.95, top=0.9, bottom=0.1, hspace=0.25)
    return fig


def _box(lo: float, hi: float, y: float, colour: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((lo, y - 0.3), hi - lo, 0.6, color=colour, lw=0)


def heatmap(table: pd.DataFrame, class_names: Sequence[str], diagnostics: Sequence[str]) -> Figure:
    """Classes x diagnostics coloured by the prototypes' median percentile within their class
    (grey: not measurable; *: a Benjamini-Hochberg finding)."""
    classes = sorted(set(table["class"]))
    grid = np.full((len(classes), len(diagnostics)), np.nan)
    star = np.zeros_like(grid, dtype=bool)
    for i, k in enumerate(classes):
        for j, d in enumerate(diagnostics):
            rows = table[(table["class"] == k) & (table["diagnostic"] == d)]
            pct = rows["percentile"].to_numpy(dtype=np.float64)
            if np.isfinite(pct).any():
                grid[i, j] = np.nanmedian(pct)
            star[i, j] = bool(rows["finding"].any())
    fig = Figure(figsize=(1.0 + 0.55 * len(diagnostics), 1.2 + 0.42 * len(classes)))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_facecolor("0.7")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu_r", vmin=0, vmax=1, aspect="auto")
    for i in range(len(classes)):
        for j in range(len(diagnostics)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}{'*' if star[i, j] else ''}", ha="center", va="center", fontsize=6)
    ax.set_xticks(range(len(diagnostics)), list(diagnostics), rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), [f"{k} {class_names[k]}" for k in classes], fontsize=7)
    fig.colorbar(im, ax=ax, label="percentile within the real class")
    ax.set_title("prototypes against the real galaxies of their class (grey: not measurable, *: finding)", fontsize=8)
    fig.subplots_adjust(left=0.3, right=0.98, top=0.9, bottom=0.28)
    return fig
