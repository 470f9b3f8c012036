"""Measure many images and compare prototypes with the real galaxies of their class.

``measure_many`` -> one row per image (the diagnostics, flags, reasons, radial profiles);
``diagnostics_table`` -> the tidy table of ``diagnostics.csv`` (one row per class, prototype
and diagnostic); ``set_summary`` -> how close the whole distilled set is to real galaxies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import stats
from .measure import DIAGNOSTICS, MeasureConfig, measure_image, sky_level, sky_sigma

__all__ = ["measure_many", "reference_sky", "diagnostics_table", "nearest_real", "set_summary", "ipc_spread"]


def _one(job: tuple[np.ndarray, float, MeasureConfig, float]) -> dict[str, Any]:
    image, sigma_ref, cfg, sky_ref = job
    return measure_image(image, sigma_ref, cfg, sky_ref).row()


def measure_many(images: np.ndarray, sigma_ref: float, cfg: MeasureConfig, progress: bool = False,
                 n_workers: int = 1, desc: str = "measuring galaxies", sky_ref: float = 0.0) -> pd.DataFrame:
    """:func:`~.measure.measure_image` on each (3, H, W) image of ``images``; one row each, in order."""
    jobs = [(np.asarray(im, dtype=np.float64), float(sigma_ref), cfg, float(sky_ref)) for im in images]
    bar = {"total": len(jobs), "desc": desc, "disable": not progress, "leave": False}
    if n_workers > 1 and len(jobs) > 4 * n_workers:
        with ProcessPoolExecutor(n_workers) as pool:
            rows = list(tqdm(pool.map(_one, jobs, chunksize=8), **bar))
    else:
        rows = [_one(j) for j in tqdm(jobs, **bar)]
    return pd.DataFrame(rows)


def reference_sky(images: np.ndarray, cfg: MeasureConfig) -> tuple[float, float]:
    """The one segmentation noise level and sky level: the real images' medians
    (:func:`~.measure.sky_sigma`, :func:`~.measure.sky_level`)."""
    sigmas = np.array([sky_sigma(im, cfg) for im in images])
    sigmas = sigmas[np.isfinite(sigmas) & (sigmas > 0)]
    levels = np.array([sky_level(im, cfg) for im in images])
    levels = levels[np.isfinite(levels)]
    return (float(np.median(sigmas)) if sigmas.size else 1e-3), (float(np.median(levels)) if levels.size else 0.0)


def _reason(row: pd.Series, diagnostic: str) -> str:
    try:
        return json.loads(row.get("reasons") or "{}").get(diagnostic, "")
    except (TypeError, ValueError):
        return ""


def diagnostics_table(protos: pd.DataFrame, reals: pd.DataFrame, class_names: Sequence[str], n_boot: int, seed: int,
                      fdr_q: float, initial: pd.DataFrame | None = None, clamped: pd.DataFrame | None = None,
                      variants: dict[int, pd.DataFrame] | None = None, stability_max: float = 0.25,
                      gamut_max: float = 0.10, diagnostics: Sequence[str] = DIAGNOSTICS) -> pd.DataFrame:
    """The tidy table: one row per (class, prototype, diagnostic).

    Args:
        protos: :func:`measure_many` of the prototypes plus ``class`` and ``prototype`` columns.
        reals: :func:`measure_many` of the real galaxies plus a ``class`` column.
        n_boot, seed: the bootstrap (an explicit generator per class and diagnostic).
        fdr_q: Benjamini-Hochberg level over every test in the table.
        initial: the initial images' measurements (same rows as ``protos``), or None.
        clamped: the prototypes clamped to [0, 1] (what eyes see), or None.
        variants: row index -> the 8 rotations / flips measured, or None.
        stability_max: flag ``unstable`` when the percentile moves more than this under them.
        gamut_max: flag ``gamut`` when clamping moves the percentile more than this.
    """
    rows = []
    for i, proto in protos.reset_index(drop=True).iterrows():
        k = int(proto["class"])
        ref_all = reals[reals["class"] == k]
        for d_index, d in enumerate(diagnostics):
            ref = ref_all[d].to_numpy(dtype=np.float64)
            value = float(proto[d])
            flags = [f for f in str(proto.get("flags") or "").split(";") if f]
            rng = np.random.default_rng([int(seed), k, d_index, int(proto["prototype"])])
            finite = ref[np.isfinite(ref)]
            row: dict[str, Any] = {
                "class": k, "class_name": class_names[k], "prototype": int(proto["prototype"]), "diagnostic": d,
                "value": value, "real_n": int(finite.size),
                "real_median": float(np.median(finite)) if finite.size else np.nan,
                "real_p05": float(np.quantile(finite, 0.05)) if finite.size else np.nan,
                "real_p95": float(np.quantile(finite, 0.95)) if finite.size else np.nan,
                "percentile": stats.percentile(value, ref), "z": stats.robust_z(value, ref),
                "p_value": stats.two_sided_p(value, ref),
            }
            row["pct_lo"], row["pct_hi"], row["z_lo"], row["z_hi"] = stats.bootstrap_intervals(value, ref, n_boot, rng)
            row["reason"] = _reason(proto, d) if not np.isfinite(value) else (
                "" if finite.size else "not measurable on the real galaxies of this class")
            if initial is not None:
                init = initial.iloc[i]
                row["initial_value"] = float(init[d])
                row["initial_percentile"] = stats.percentile(float(init[d]), ref)
                row["change"] = value - float(init[d])
            if clamped is not None:
                row["clamped_percentile"] = stats.percentile(float(clamped.iloc[i][d]), ref)
                moved = abs(row["clamped_percentile"] - row["percentile"])
                if np.isfinite(moved) and moved > gamut_max:
                    flags.append("gamut")
            if variants is not None and i in variants:
                spread = stats.percentile_spread(variants[i][d].to_numpy(dtype=np.float64), ref)
                row["stability_spread"] = spread
                if np.isfinite(spread) and spread > stability_max:
                    flags.append("unstable")
            row["flags"] = ";".join(flags)
            rows.append(row)
    table = pd.DataFrame(rows)
    table["q_value"] = stats.benjamini_hochberg(table["p_value"].to_numpy())
    table["finding"] = table["q_value"] <= fdr_q
    table["measurable"] = np.isfinite(table["value"]) & np.isfinite(table["percentile"])
    return table


def nearest_real(protos: np.ndarray, proto_classes: np.ndarray, reals: np.ndarray, real_classes: np.ndarray,
                 k: int = 3) -> tuple[list[list[int]], np.ndarray]:
    """Each prototype's ``k`` nearest real galaxies of its class (pixel L2 in display space, clamped)
    and the percentile of its nearest distance among the real galaxies' own nearest distances."""
    p = np.clip(np.nan_to_num(protos.reshape(len(protos), -1)), 0, 1)
    r = reals.reshape(len(reals), -1)
    indices: list[list[int]] = []
    pct = np.full(len(protos), np.nan)
    for i in range(len(protos)):
        members = np.flatnonzero(real_classes == proto_classes[i])
        if members.size < 2:
            indices.append([])
            continue
        rc = r[members]
        dist = np.sqrt(((rc - p[i]) ** 2).sum(1))
        indices.append([int(members[j]) for j in np.argsort(dist)[:k]])
        gram = (rc**2).sum(1)[:, None] + (rc**2).sum(1)[None, :] - 2 * rc @ rc.T
        np.fill_diagonal(gram, np.inf)
        own = np.sqrt(np.clip(gram.min(1), 0, None))
        pct[i] = stats.percentile(float(dist.min()), own)
    return indices, pct


def set_summary(table: pd.DataFrame, nn_percentiles: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
    """How close a distilled set is to real galaxies: the share of measurable (prototype,
    diagnostic) pairs inside their class's 5-95 % envelope, the median nearest-neighbour
    percentile, the number of findings."""
    ok = table[table["measurable"]]
    inside = ((ok["percentile"] >= 0.05) & (ok["percentile"] <= 0.95)).mean() if len(ok) else float("nan")
    nn = nn_percentiles[np.isfinite(nn_percentiles)]
    return {
        **{k: meta.get(k) for k in ("variant", "dataset", "method", "ipc", "init", "augmented")},
        "envelope_share": float(inside), "nn_percentile_median": float(np.median(nn)) if nn.size else float("nan"),
        "n_findings": int(table["finding"].sum()), "n_tests": int(table["p_value"].notna().sum()),
        "n_not_measurable": int((~table["measurable"]).sum()),
    }


def ipc_spread(table: pd.DataFrame, reals: pd.DataFrame) -> pd.DataFrame:
    """With several prototypes per class: the Mann-Whitney AUC of the prototypes against the
    class, and the prototypes' interquartile range relative to the class's."""
    rows = []
    for (k, d), group in table.groupby(["class", "diagnostic"]):
        ref = reals.loc[reals["class"] == k, d].to_numpy(dtype=np.float64)
        ref = ref[np.isfinite(ref)]
        vals = group["value"].to_numpy(dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        iqr_ref = np.subtract(*np.quantile(ref, [0.75, 0.25])) if ref.size else np.nan
        iqr = np.subtract(*np.quantile(vals, [0.75, 0.25])) if vals.size else np.nan
        rows.append({"class": k, "diagnostic": d, "auc": stats.mann_whitney_auc(vals, ref),
                     "spread_ratio": float(iqr / iqr_ref) if iqr_ref and np.isfinite(iqr_ref) else np.nan})
    return pd.DataFrame(rows)
