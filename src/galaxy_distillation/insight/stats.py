"""Statistics for one prototype against the real galaxies of its class (pure numpy).

Every random step takes an explicit :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["percentile", "robust_z", "bootstrap_intervals", "two_sided_p", "benjamini_hochberg",
           "mann_whitney_auc", "transforms", "percentile_spread"]


def _finite(ref: np.ndarray) -> np.ndarray:
    ref = np.asarray(ref, dtype=np.float64)
    return ref[np.isfinite(ref)]


def percentile(value: float, ref: np.ndarray) -> float:
    """Mid-rank percentile of ``value`` in ``ref`` in [0, 1]: (#below + #equal / 2) / n; NaN when
    either is missing."""
    ref = _finite(ref)
    if not np.isfinite(value) or ref.size == 0:
        return float("nan")
    return float(((ref < value).sum() + 0.5 * (ref == value).sum()) / ref.size)


def robust_z(value: float, ref: np.ndarray) -> float:
    """(value - median) / (1.4826 MAD); NaN when the MAD is 0 or data are missing."""
    ref = _finite(ref)
    if not np.isfinite(value) or ref.size == 0:
        return float("nan")
    med = np.median(ref)
    mad = 1.4826 * np.median(np.abs(ref - med))
    return float((value - med) / mad) if mad > 0 else float("nan")


def bootstrap_intervals(value: float, ref: np.ndarray, n_boot: int, rng: np.random.Generator,
                        level: float = 0.95) -> tuple[float, float, float, float]:
    """Percentile and robust-z intervals from resampling the real galaxies with replacement.

    Returns ``(pct_lo, pct_hi, z_lo, z_hi)`` (NaN when not measurable)."""
    ref = _finite(ref)
    nan4 = (float("nan"),) * 4
    if not np.isfinite(value) or ref.size < 2 or n_boot < 1:
        return nan4
    samples = ref[rng.integers(0, ref.size, size=(n_boot, ref.size))]
    pct = ((samples < value).sum(1) + 0.5 * (samples == value).sum(1)) / ref.size
    med = np.median(samples, axis=1)
    mad = 1.4826 * np.median(np.abs(samples - med[:, None]), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(mad > 0, (value - med) / mad, np.nan)
    a = (1 - level) / 2
    z = z[np.isfinite(z)]
    z_lo, z_hi = (np.quantile(z, [a, 1 - a]) if z.size else (np.nan, np.nan))
    p_lo, p_hi = np.quantile(pct, [a, 1 - a])
    return float(p_lo), float(p_hi), float(z_lo), float(z_hi)


def two_sided_p(value: float, ref: np.ndarray) -> float:
    """Rank test of "value is drawn like ref": ``min(1, 2 min(#<=, #>=) + 1) / (n + 1))``."""
    ref = _finite(ref)
    if not np.isfinite(value) or ref.size == 0:
        return float("nan")
    le, ge = int((ref <= value).sum()), int((ref >= value).sum())
    return float(min(1.0, 2.0 * (min(le, ge) + 1) / (ref.size + 1)))


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    order = np.argsort(p[ok])
    ranked = p[ok][order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty(m)
    out[order] = ranked
    q[ok] = out
    return q


def mann_whitney_auc(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs (the Mann-Whitney U / (n m))."""
    x, y = _finite(x), _finite(y)
    if x.size == 0 or y.size == 0:
        return float("nan")
    diff = x[:, None] - y[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def transforms(image: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations and flips of a (C, H, W) image (the first is the image itself)."""
    out = []
    for flip in (False, True):
        base = image[:, :, ::-1] if flip else image
        for k in range(4):
            out.append(np.ascontiguousarray(np.rot90(base, k, axes=(1, 2))))
    return out


def percentile_spread(values: np.ndarray, ref: np.ndarray) -> float:
    """Range of the percentiles of ``values`` (one per rotation / flip) in ``ref``."""
    pct = np.array([percentile(v, ref) for v in np.asarray(values, dtype=np.float64)])
    pct = pct[np.isfinite(pct)]
    return float(pct.max() - pct.min()) if pct.size else float("nan")
