"""The physical properties of one synthetic Galaxy Zoo 2 galaxy, drawn for its class.

A galaxy is a flat dict of JSON-friendly numbers (the sky's truth table): its class, its
``clarity`` in [0, 1] (how easy it is to classify; the vote simulator uses it too), size,
Sersic index, axis ratio, position angle, bulge, disk, bar and spiral-arm strengths, colours
as (g, r, i) flux ratios, PSF width, S/N, sky-noise correlation, stars and neighbours. Lengths
are in pixels at the reference size of the real cutouts (424 px, R90 about 50 px); the
renderer (:mod:`galaxy_distillation.sky.render`) rescales them and turns them into an image.

Public API: :func:`draw_properties`, :func:`draw_clarity`, :data:`CLASS_NAMES`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .votes import _draw_lean

N_CLASSES = 9
CLASS_NAMES: tuple[str, ...] = (
    "smooth_round",
    "smooth_in_between",
    "smooth_cigar",
    "edge_on_bulge",
    "edge_on_no_bulge",
    "face_on_bar_spiral",
    "face_on_bar_no_spiral",
    "face_on_no_bar_spiral",
    "face_on_no_bar_no_spiral",
)

#: Reference image size of the real cutouts (pixels).
REFERENCE_SIZE = 424
#: R90 in pixels at the reference size (0.02 x petroR90 arcsec/pixel -> 50 px).
R90_PIXELS = 50.0
#: Axis-ratio ranges of the smooth classes (round, in-between, cigar).
SMOOTH_Q_RANGES: tuple[tuple[float, float], ...] = ((0.8, 1.0), (0.5, 0.8), (0.2, 0.45))

# Colours as (g, r, i) flux ratios relative to r.
RED_GRI = np.array([0.42, 1.0, 1.32], dtype=np.float32)  # ellipticals, bulges, bars
DISK_GRI = np.array([0.66, 1.0, 1.14], dtype=np.float32)  # old disk light
EDGE_GRI = np.array([0.72, 1.0, 1.08], dtype=np.float32)  # edge-on disks
ARM_GRI = np.array([1.0, 1.0, 0.86], dtype=np.float32)  # spiral arms
KNOT_GRI = np.array([1.35, 1.0, 0.72], dtype=np.float32)  # star-forming knots


class RenderError(ValueError):
    """Invalid input to the renderer."""

def _check_class(true_class: int) -> int:
    if isinstance(true_class, bool) or not isinstance(true_class, (int, np.integer)):
        raise RenderError(f"true_class must be an int in 0..8, got {true_class!r}")
    if not 0 <= int(true_class) < N_CLASSES:
        raise RenderError(f"true_class must be in 0..8, got {true_class}")
    return int(true_class)


def draw_clarity(rng: np.random.Generator) -> float:
    """Draw a galaxy clarity in [0.02, 1]: most galaxies clear, a tail ambiguous.

    Beta(2.6, 1.4): mean 0.65, about 20 % below 0.4.
    """
    return float(np.clip(rng.beta(2.6, 1.4), 0.02, 1.0))


def _colour(base: np.ndarray, rng: np.random.Generator, scatter: float = 0.06) -> list[float]:
    """Jitter a (g, r, i) colour multiplicatively; returns a plain list."""
    return [float(v) for v in base * np.exp(rng.normal(0.0, scatter, 3))]


def _smooth_axis_ratio(true_class: int, clarity: float, rng: np.random.Generator) -> tuple[float, int | None]:
    """Axis ratio of classes 0-2; ambiguous galaxies sit near a class boundary.

    Returns ``(q, lean_class)``: the class across the boundary when q was put near
    one, else None.
    """
    lo, hi = SMOOTH_Q_RANGES[true_class]
    if rng.random() < 0.8 * (1.0 - clarity):
        edges = {0: [(0.8, 1)], 1: [(0.5, 2), (0.8, 0)], 2: [(0.45, 1)]}[true_class]
        edge, lean = edges[int(rng.integers(len(edges)))]
        width = 0.06
        q = edge + (width * rng.random() if edge == lo else -width * rng.random())
        return float(np.clip(q, lo, hi)), lean
    return float(rng.uniform(lo, hi)), None


def draw_properties(
    true_class: int, rng: np.random.Generator, clarity: float | None = None
) -> dict[str, Any]:
    """Draw the physical properties of one galaxy of a given class.

    Args:
        true_class: class index 0..8 (see :data:`CLASS_NAMES`).
        rng: random generator (the only source of randomness).
        clarity: how easy the galaxy is to classify, in [0, 1]; drawn with
            :func:`draw_clarity` when None.

    Returns:
        A flat dict of JSON-friendly scalars/lists (lengths in pixels at the
        reference size 424; the renderer rescales them).
    """
    c = _check_class(true_class)
    if clarity is None:
        clarity = draw_clarity(rng)
    clarity = float(clarity)
    if not 0.0 <= clarity <= 1.0 or math.isnan(clarity):
        raise RenderError(f"clarity must be in [0, 1], got {clarity}")
    # strength of the class-defining features (bar, arms, bulge contrast)
    strength = float(np.clip(0.3 + 0.7 * clarity + rng.normal(0.0, 0.08), 0.15, 1.0))
    # angular size: small galaxies -> big PSF (in pixels) and blocky upsampled noise
    r90_arcsec = float(np.clip(np.exp(rng.normal(np.log(4.5) + clarity * np.log(18.0 / 4.5), 0.2)), 2.5, 40.0))
    psf_fwhm_arcsec = float(rng.uniform(1.1, 1.7))
    arcsec_per_px = 0.02 * r90_arcsec
    p: dict[str, Any] = {
        "true_class": c,
        "class_name": CLASS_NAMES[c],
        "clarity": clarity,
        "feature_strength": strength,
        "petro_r90_arcsec": r90_arcsec,
        "psf_sigma_px": float(psf_fwhm_arcsec / arcsec_per_px / 2.355),
        "noise_corr_px": float(0.396 / arcsec_per_px),
        "r90_px": float(R90_PIXELS * np.exp(rng.normal(0.0, 0.07))),
        # surface-brightness S/N at R50 (sky-noise units)
        "snr": float(np.exp(rng.normal(np.log(6.0) + clarity * np.log(30.0 / 6.0), 0.25))),
        "brightness": float(np.exp(rng.normal(0.0, 0.25))),
        "position_angle": float(rng.uniform(0.0, np.pi)),
        "centre_offset": [float(v) for v in rng.normal(0.0, 0.7, 2)],
        "redshift": float(rng.uniform(0.02, 0.2) * (1.6 - 0.6 * clarity)),
        # field contents: same distributions for every class (no shortcut)
        "n_stars": int(rng.poisson(1.6)),
        "n_neighbours": int(rng.poisson(1.2)),
        "axis_ratio": 1.0,
        "sersic_n": 0.0,
        "bulge_fraction": 0.0,
        "bar_fraction": 0.0,
        "bar_length_px": 0.0,
        "bar_axis_ratio": 0.0,
        "bar_angle": 0.0,
        "n_arms": 0,
        "pitch_deg": 0.0,
        "arm_fraction": 0.0,
        "n_knots": 0,
        "disk_thickness": 0.0,
        "dust_lane": 0.0,
        "colour_main": _colour(RED_GRI, rng, 0.1),
        "colour_disk": _colour(DISK_GRI, rng, 0.1),
        "colour_arm": _colour(ARM_GRI, rng, 0.1),
        # galaxy-wide colour tilt (k-correction / reddening): g x e^t, i x e^-t
        "colour_tilt": float(rng.normal(0.0, 0.15)),
    }
    lean = _draw_lean(c, rng)
    if c <= 2:
        p["axis_ratio"], edge_lean = _smooth_axis_ratio(c, clarity, rng)
        lean = lean if edge_lean is None else edge_lean
        p["sersic_n"] = float(rng.uniform(2.5, 5.0))
        p["bulge_fraction"] = 1.0
    elif c <= 4:
        p["colour_disk"] = _colour(EDGE_GRI, rng)
        thick = rng.uniform(0.07, 0.13) + 0.16 * (1.0 - clarity) * rng.random()
        p["disk_thickness"] = float(thick)
        p["axis_ratio"] = float(thick)
        p["dust_lane"] = float(rng.uniform(0.2, 0.6) if rng.random() < 0.4 else 0.0)
        if c == 3:
            p["bulge_fraction"] = float(rng.uniform(0.18, 0.45) * (0.5 + 0.5 * strength))
            p["sersic_n"] = float(rng.uniform(2.0, 4.0))
        else:
            p["bulge_fraction"] = float(rng.uniform(0.0, 0.04) * (1.0 - clarity))
            p["sersic_n"] = 2.0
    else:
        q_min = 0.55 - 0.2 * (1.0 - clarity)
        p["axis_ratio"] = float(rng.uniform(q_min, 1.0))
        p["sersic_n"] = float(rng.uniform(2.0, 4.0))
        p["bulge_fraction"] = float(np.clip(rng.beta(2.0, 6.0) * 0.6, 0.02, 0.5))
        if c in (6, 8):
            p["colour_disk"] = _colour(0.5 * (DISK_GRI + EDGE_GRI), rng)
        if c in (5, 6):
            p["bulge_fraction"] *= 0.6
            p["bar_fraction"] = float(rng.uniform(0.2, 0.34) * strength)
            p["bar_length_px"] = float(rng.uniform(1.6, 2.4) * p["r90_px"] / 3.9)
            p["bar_axis_ratio"] = float(rng.uniform(0.15, 0.28))
            p["bar_angle"] = float(rng.uniform(0.0, np.pi))
        if c in (5, 7):
            p["n_arms"] = int(rng.choice([1, 2, 3, 4, 5], p=[0.05, 0.55, 0.2, 0.12, 0.08]))
            p["pitch_deg"] = float(rng.uniform(9.0, 32.0))
            p["arm_fraction"] = float(rng.uniform(0.35, 0.6) * strength)
            p["n_knots"] = int(rng.integers(6, 40))
    # the look-alike class volunteers drift to when the galaxy is ambiguous
    p["lean_class"] = int(lean)
    return p
