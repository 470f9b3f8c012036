"""Measure a galaxy image the way astronomers do: colour, radial profiles, Fourier arm and bar
amplitudes (pure numpy / scipy) and statmorph's C, A, S, Gini, M20 and ellipticity.

Images are display-space floats (3, H, W), channels (R, G, B) ~ (i, r, g), NOT clamped: a real
galaxy is ``uint8 / 255``; a prototype is :func:`denormalise` d (ZCA inverse, then ``x * std +
mean``). Every image is segmented with one threshold taken from the real images' sky noise
(``sigma_ref``, :func:`sky_sigma`), the sky is the MEAN of the outer ring outside the segments
(the display sky is clipped at 0, so its median is biased), and a diagnostic that cannot be
measured gets NaN and a reason instead of a number. Nothing here raises on a bad image.
"""

from __future__ import annotations

import json
import math
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "DIAGNOSTICS", "STATMORPH_DIAGNOSTICS", "MeasureConfig", "Measurement", "denormalise", "sky_sigma",
    "measure_image", "has_statmorph", "radial_profile", "sky_level",
]

#: statmorph's quantities used here (our name -> statmorph attribute).
_STATMORPH = {"concentration": "concentration", "asymmetry": "asymmetry", "smoothness": "smoothness",
              "gini": "gini", "m20": "m20", "ellipticity": "ellipticity_centroid"}
STATMORPH_DIAGNOSTICS: tuple[str, ...] = tuple(_STATMORPH)
#: Every diagnostic, in report order.
DIAGNOSTICS: tuple[str, ...] = (
    "colour", "blue_fraction", "outer_colour", "colour_gradient", "core_radius", "half_light_radius",
    "fourier_m1", "fourier_m2", "fourier_m3", "fourier_m4", "arm_amplitude", "bar_strength",
    *STATMORPH_DIAGNOSTICS,
)
_COLOUR = ("colour", "blue_fraction", "outer_colour", "colour_gradient")


@dataclass(frozen=True)
class MeasureConfig:
    """How images are measured (built from ``conf/base/parameters_insight.yml`` via
    :class:`galaxy_distillation.params.InsightParams`)."""

    linearise_q: float  # asinh softening undone before Fourier amplitudes (mock ~5, SDSS ~3.5)
    seg_nsigma: float  # segment threshold in units of the real images' sky noise
    ring_fraction: float  # width of the outer ring (sky) as a fraction of the side
    min_segment_px: int  # fewer pixels: no source
    min_sky_px: int  # fewer ring pixels outside the segments: no sky (frame-filling)
    max_segment_fraction: float  # a segment covering more of the frame: frame-filling
    blue_threshold: float  # a pixel is blue when -2.5 log10(B / R) is below this
    bar_min_size: int  # bar strength needs at least this side (px)
    bar_phase_tol_deg: float  # the m = 2 phase must stay within this of its mean ...
    bar_min_annuli: int  # ... over at least this many consecutive annuli
    smoothness_min_rpetro: float  # statmorph's S is 0 below this Petrosian radius (px)
    profile_bins: int  # radial profile bins out to half the side
    statmorph_timeout_s: float
    use_statmorph: bool


@dataclass
class Measurement:
    """One image's diagnostics: ``values[d]`` (NaN when not measurable, then ``reasons[d]``)."""

    values: dict[str, float]
    reasons: dict[str, str]
    flags: list[str] = field(default_factory=list)
    profile: np.ndarray | None = None  # (bins,) mean sky-subtracted brightness per annulus
    colour_profile: np.ndarray | None = None  # (bins,) -2.5 log10(B / R) per annulus

    def row(self) -> dict[str, Any]:
        """A flat record (diagnostics, ``flags``, ``reasons`` as JSON, ``profile_k``, ``colour_profile_k``)."""
        out: dict[str, Any] = dict(self.values)
        out["flags"] = ";".join(self.flags)
        out["reasons"] = json.dumps(self.reasons, sort_keys=True)
        for name in ("profile", "colour_profile"):
            arr = getattr(self, name)
            if arr is not None:
                out.update({f"{name}_{k}": float(v) for k, v in enumerate(arr)})
        return out


def has_statmorph() -> bool:
    try:
        import statmorph  # noqa: F401
    except ImportError:
        return False
    return True


def denormalise(images: Any, data_transform: dict[str, Any]) -> np.ndarray:
    """Model-space images (N, C, H, W) -> display space WITHOUT clamping: ZCA inverse (with the
    saved state, when the run used it), then ``x * std + mean``. Returns float64 numpy."""
    import torch

    from galaxy_distillation.engine.zca import ZCA

    x = torch.as_tensor(images).detach().to(torch.float32)
    zca = {k[4:]: v for k, v in data_transform.items() if k.startswith("zca.")}
    if zca:
        x = ZCA.from_state_dict(zca).inverse_transform(x)
    mean = torch.as_tensor(data_transform["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.as_tensor(data_transform["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return (x * std + mean).double().numpy()


def _ring(shape: tuple[int, int], fraction: float) -> np.ndarray:
    h, w = shape
    width = max(2, int(round(fraction * min(h, w))))
    ring = np.ones(shape, dtype=bool)
    ring[width:h - width, width:w - width] = False
    return ring


def sky_sigma(image: np.ndarray, cfg: MeasureConfig) -> float:
    """Robust noise (1.4826 MAD) of the smoothed luminance in the outer ring of one image."""
    lum = ndimage.gaussian_filter(np.asarray(image, dtype=np.float64).mean(axis=0), 1.0)
    vals = lum[_ring(lum.shape, cfg.ring_fraction)]
    if not np.isfinite(vals).all():
        return float("nan")
    return float(1.4826 * np.median(np.abs(vals - np.median(vals))))


def _segment(lum_sub: np.ndarray, threshold: float, cfg: MeasureConfig) -> tuple[np.ndarray, np.ndarray]:
    """(main segment, all segments): components of the smoothed image above ``threshold``; the
    main one holds the centre (or is the largest whose centre of mass is near it)."""
    smooth = ndimage.gaussian_filter(lum_sub, 1.0)
    labels, n = ndimage.label(smooth > threshold)
    if n == 0:
        return np.zeros(lum_sub.shape, bool), np.zeros(lum_sub.shape, bool)
    h, w = lum_sub.shape
    centre = labels[h // 2, w // 2]
    if centre == 0:
        sizes = ndimage.sum(np.ones_like(labels), labels, index=np.arange(1, n + 1))
        coms = ndimage.center_of_mass(np.ones_like(labels), labels, index=np.arange(1, n + 1))
        near = [k for k, (y, x) in enumerate(coms) if abs(y - h / 2) < h / 4 and abs(x - w / 2) < w / 4]
        centre = 1 + max(near, key=lambda k: sizes[k]) if near else 0
    main = labels == centre if centre else np.zeros(lum_sub.shape, bool)
    return main, labels > 0


def radial_profile(data: np.ndarray, centre: tuple[float, float], edges: np.ndarray) -> np.ndarray:
    """Mean of ``data`` in circular annuli (pixel centres; photutils' ``RadialProfile`` with
    ``method='center'`` when photutils is installed, the same sums in numpy otherwise)."""
    try:
        from photutils.profiles import RadialProfile
    except ImportError:
        return _radial_profile_numpy(data, centre, edges)
    return np.asarray(RadialProfile(data, centre, edges, method="center").profile, dtype=np.float64)


def _radial_profile_numpy(data: np.ndarray, centre: tuple[float, float], edges: np.ndarray) -> np.ndarray:
    yy, xx = np.indices(data.shape)
    r = np.hypot(xx - centre[0], yy - centre[1])
    out = np.full(len(edges) - 1, np.nan)
    for k in range(len(edges) - 1):
        sel = (r >= edges[k]) & (r < edges[k + 1])
        if sel.any():
            out[k] = data[sel].mean()
    return out


def _mag(blue: float, red: float) -> float:
    return -2.5 * math.log10(blue / red) if blue > 0 and red > 0 else float("nan")


def _radii(lum: np.ndarray, seg: np.ndarray, xc: float, yc: float) -> tuple[np.ndarray, dict[str, float]]:
    yy, xx = np.indices(lum.shape)
    r = np.hypot(xx - xc, yy - yc)
    rs, fs = r[seg], np.clip(lum[seg], 0, None)
    order = np.argsort(rs)
    cum = np.cumsum(fs[order])
    out = {}
    for name, frac in (("r20", 0.2), ("r50", 0.5), ("r80", 0.8)):
        k = int(np.searchsorted(cum, frac * cum[-1]))
        out[name] = float(rs[order][min(k, len(order) - 1)])
    return r, out


def _phase_coherent_peak(amps: np.ndarray, phases: np.ndarray, tol_deg: float, min_run: int) -> float:
    """Peak m = 2 amplitude over the longest run of consecutive annuli whose m = 2 phase (period
    180 deg) stays within ``tol_deg`` of the run's circular mean; 0 when no run is long enough."""
    best: list[int] = []
    for start in range(len(phases)):
        for stop in range(start + min_run, len(phases) + 1):
            ph = 2.0 * phases[start:stop]  # angle with period 360
            mean = np.angle(np.exp(1j * ph).mean())
            dev = np.abs(np.angle(np.exp(1j * (ph - mean)))) / 2.0
            if np.degrees(dev.max()) > tol_deg:
                break
            if stop - start > len(best):
                best = list(range(start, stop))
    return float(amps[best].max()) if best else 0.0


def _fourier(lin: np.ndarray, seg: np.ndarray, xc: float, yc: float, radii: dict[str, float],
             cfg: MeasureConfig, size: int) -> tuple[dict[str, float], dict[str, str]]:
    """Fourier amplitudes of the linearised luminance in the outer disc's plane."""
    values: dict[str, float] = {}
    reasons: dict[str, str] = {}
    yy, xx = np.indices(lin.shape)
    x, y = xx - xc, yy - yc
    rr = np.hypot(x, y)
    outer = seg & (rr >= radii["r50"]) & (rr <= max(radii["r80"], radii["r50"] + 1))
    w = np.clip(lin, 0, None)
    if w[outer].sum() > 0 and outer.sum() >= 5:
        wx, wy, ww = x[outer], y[outer], w[outer]
        cxx, cyy, cxy = (ww * wx * wx).sum() / ww.sum(), (ww * wy * wy).sum() / ww.sum(), (ww * wx * wy).sum() / ww.sum()
        pa = 0.5 * math.atan2(2 * cxy, cxx - cyy)
        lam = np.linalg.eigvalsh([[cxx, cxy], [cxy, cyy]])
        q = float(np.sqrt(max(lam[0], 1e-9) / max(lam[1], 1e-9)))
        q = max(q, 0.2)
    else:
        pa, q = 0.0, 1.0
    u = x * math.cos(pa) + y * math.sin(pa)
    v = (-x * math.sin(pa) + y * math.cos(pa)) / q
    rd, phi = np.hypot(u, v), np.arctan2(v, u)
    r20, r50, r80 = (radii[k] / math.sqrt(q) for k in ("r20", "r50", "r80"))  # circularised

    def amplitude(sel: np.ndarray, m: int) -> complex | None:
        total = lin[sel].sum()
        return None if total <= 0 or sel.sum() < 4 else complex((lin[sel] * np.exp(-1j * m * phi[sel])).sum() / total)

    region = (rd >= r20) & (rd <= max(r80, r20 + 1))
    for m in range(1, 5):
        c = amplitude(region, m)
        values[f"fourier_m{m}"] = float(abs(c)) if c is not None else float("nan")
    arm_sel = (rd >= r50) & (rd <= max(r80, r50 + 1))
    arms = [amplitude(arm_sel, m) for m in (2, 3, 4)]
    values["arm_amplitude"] = (float(math.sqrt(sum(abs(c) ** 2 for c in arms))) if all(c is not None for c in arms)
                               else float("nan"))
    for key in [k for k, v in values.items() if not np.isfinite(v)]:
        reasons[key] = "no positive flux in the annulus"
    if size < cfg.bar_min_size:
        values["bar_strength"] = float("nan")
        reasons["bar_strength"] = f"not measurable at {size} px (bars need >= {cfg.bar_min_size} px)"
        return values, reasons
    r_in, r_out = max(1.0, 0.25 * r50), 1.5 * r50
    n = max(cfg.bar_min_annuli, min(8, int((r_out - r_in) / 1.5)))
    edges = np.linspace(r_in, r_out, n + 1)
    amps, phases = [], []
    for k in range(n):
        c = amplitude((rd >= edges[k]) & (rd < edges[k + 1]), 2)
        amps.append(abs(c) if c is not None else 0.0)
        phases.append(np.angle(c) / 2 if c is not None else np.nan)
    amps_a, phases_a = np.array(amps), np.array(phases)
    if np.isnan(phases_a).any():
        values["bar_strength"] = float("nan")
        reasons["bar_strength"] = "an annulus inside 1.5 r50 has no positive flux"
    else:
        values["bar_strength"] = _phase_coherent_peak(amps_a, phases_a, cfg.bar_phase_tol_deg, cfg.bar_min_annuli)
    return values, reasons


class _Timeout(Exception):
    pass


_NEEDED = ("concentration", "asymmetry", "smoothness", "gini", "m20", "ellipticity_centroid", "rpetro_circ")
_MORPH: list[type] = []


def _morphology_class(statmorph: Any) -> type:
    """statmorph's ``SourceMorphology`` computing only what is used here (C, A, S, Gini, M20,
    ellipticity, Petrosian radius), not the Sersic fit, MID or shape asymmetry: the same values,
    a fraction of the time. Its flags are statmorph's (the Gini/MID segmap check included)."""
    if not _MORPH:
        class _Morphology(statmorph.SourceMorphology):
            def _calculate_morphology(self) -> None:
                for name in _NEEDED:
                    _ = self[name]

        _MORPH.append(_Morphology)
    return _MORPH[0]


def _statmorph(lum_sub: np.ndarray, seg: np.ndarray, others: np.ndarray, sigma_ref: float, cfg: MeasureConfig
               ) -> tuple[dict[str, float], dict[str, str], list[str]]:
    values = {k: float("nan") for k in STATMORPH_DIAGNOSTICS}
    if not cfg.use_statmorph:
        return values, dict.fromkeys(values, "not measured (statmorph switched off)"), []
    try:
        import statmorph
    except ImportError:
        return values, dict.fromkeys(values, "not measurable (statmorph not installed)"), []
    import warnings

    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")

    def on_alarm(signum, frame):  # noqa: ANN001
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm) if use_alarm else None
    try:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, cfg.statmorph_timeout_s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            morph = _morphology_class(statmorph)(lum_sub, seg.astype(np.int32), 1, mask=others,
                                                 weightmap=np.full(lum_sub.shape, sigma_ref))
    except _Timeout:
        return values, dict.fromkeys(values, f"statmorph timed out (> {cfg.statmorph_timeout_s:g} s)"), ["statmorph_timeout"]
    except Exception as err:  # noqa: BLE001 - statmorph on a bad image must not stop the run
        return values, dict.fromkeys(values, f"statmorph failed: {type(err).__name__}"), ["statmorph_error"]
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    flag = int(morph.flag)
    reasons: dict[str, str] = {}
    flags = [f"statmorph_flag_{flag}"] if flag else []
    for ours, theirs in _STATMORPH.items():
        if flag >= 4:
            reasons[ours] = "statmorph flag 4 (catastrophic)"
            continue
        value = float(morph[theirs])
        if np.isfinite(value) and value != -99.0:
            values[ours] = value
        else:
            reasons[ours] = "statmorph returned no value"
    if np.isfinite(values["smoothness"]) and float(morph.rpetro_circ) < cfg.smoothness_min_rpetro:
        values["smoothness"] = float("nan")
        reasons["smoothness"] = f"Petrosian radius {float(morph.rpetro_circ):.1f} px < {cfg.smoothness_min_rpetro:g} px"
    return values, reasons, flags


def _unmeasurable(reason: str, flags: list[str], bins: int) -> Measurement:
    return Measurement({d: float("nan") for d in DIAGNOSTICS}, dict.fromkeys(DIAGNOSTICS, reason), flags,
                       np.full(bins, np.nan), np.full(bins, np.nan))


def sky_level(image: np.ndarray, cfg: MeasureConfig) -> float:
    """Median of the luminance in the outer ring of one image (the real images' sky level)."""
    lum = np.asarray(image, dtype=np.float64).mean(axis=0)
    return float(np.median(lum[_ring(lum.shape, cfg.ring_fraction)]))


def measure_image(image: np.ndarray, sigma_ref: float, cfg: MeasureConfig, sky_ref: float = 0.0) -> Measurement:
    """All diagnostics of one display-space image (3, H, W) (unclamped float; never raises).

    Args:
        image: channels (R, G, B) ~ (i, r, g).
        sigma_ref: the real images' sky noise (:func:`sky_sigma`, median over the curated set):
            one segmentation threshold for real galaxies and prototypes alike.
        sky_ref: the real images' sky level (:func:`sky_level`, median): a source whose outer
            ring is more than half as bright as its centre above it fills the frame.
        cfg: see :class:`MeasureConfig`.
    """
    img = np.asarray(image, dtype=np.float64)
    bins = cfg.profile_bins
    if img.ndim != 3 or img.shape[0] != 3:
        return _unmeasurable(f"expected a (3, H, W) image, got {img.shape}", ["bad_shape"], bins)
    if not np.isfinite(img).all():
        return _unmeasurable("image has NaN or infinite pixels", ["non_finite"], bins)
    flags: list[str] = []
    size = min(img.shape[1:])
    negative = float((img < 0).mean())
    if negative > 0.5:
        return _unmeasurable(f"{negative:.0%} of pixels are negative", ["mostly_negative"], bins)
    if negative > 0.05 or (img > 1).mean() > 0.05:
        flags.append("out_of_gamut")
    lum = img.mean(axis=0)
    ring = _ring(lum.shape, cfg.ring_fraction)
    own = sky_sigma(img, cfg)
    if own > 3 * sigma_ref:
        flags.append("noisy")
    threshold = cfg.seg_nsigma * max(sigma_ref, own)
    sky = lum[ring].mean()
    main = np.zeros(lum.shape, bool)
    for _ in range(2):  # segment, re-take the sky outside the segments, segment again
        main, every = _segment(lum - sky, threshold, cfg)
        outside = ring & ~ndimage.binary_dilation(every, iterations=2)
        if outside.sum() < cfg.min_sky_px:
            return _unmeasurable("no sky: the source fills the frame", flags + ["frame_filling"], bins)
        sky = lum[outside].mean()
    peak = ndimage.gaussian_filter(lum, 1.0)[main].max() if main.any() else sky
    if sky - sky_ref > 0.5 * (peak - sky_ref):
        return _unmeasurable("no sky: the outer ring is as bright as the source", flags + ["frame_filling"], bins)
    if sky - sky_ref > 10 * sigma_ref:
        flags.append("sky_offset")
    if main.sum() < cfg.min_segment_px:
        return _unmeasurable("no source above the real images' sky threshold", flags + ["no_source"], bins)
    if main.mean() > cfg.max_segment_fraction:
        return _unmeasurable(f"the segment covers {main.mean():.0%} of the frame", flags + ["frame_filling"], bins)
    sky_c = np.array([img[c][outside].mean() for c in range(3)])
    sub = img - sky_c[:, None, None]
    lum_sub = sub.mean(axis=0)
    if lum_sub[main].sum() <= 0:
        return _unmeasurable("no positive flux in the segment", flags + ["nonpositive_flux"], bins)
    wts = np.clip(lum_sub, 0, None) * main
    yy, xx = np.indices(lum.shape)
    xc, yc = float((wts * xx).sum() / wts.sum()), float((wts * yy).sum() / wts.sum())
    r, radii = _radii(lum_sub, main, xc, yc)
    values: dict[str, float] = {"core_radius": radii["r20"], "half_light_radius": radii["r50"]}
    reasons: dict[str, str] = {}
    red, blue = sub[0], sub[2]
    values["colour"] = _mag(blue[main].sum(), red[main].sum())
    both = main & (red > 0) & (blue > 0)
    pix = -2.5 * np.log10(np.where(both, blue, 1.0) / np.where(both, red, 1.0))
    values["blue_fraction"] = float((both & (pix < cfg.blue_threshold)).sum() / main.sum())
    core = main & (r <= max(radii["r20"], 1.5))
    ring_out = main & (r > radii["r50"]) & (r <= max(radii["r80"], radii["r50"] + 1))
    values["outer_colour"] = _mag(blue[ring_out].sum(), red[ring_out].sum())
    values["colour_gradient"] = values["outer_colour"] - _mag(blue[core].sum(), red[core].sum())
    for key in _COLOUR:
        if not np.isfinite(values[key]):
            reasons[key] = "no positive flux in a channel"
    lum_display = np.clip(lum, 1e-12, None)
    factor = np.sinh(cfg.linearise_q * lum_display) / (cfg.linearise_q * lum_display)
    lin = (img * factor[None]).mean(axis=0)
    lin = lin - lin[outside].mean()
    f_values, f_reasons = _fourier(lin, main, xc, yc, radii, cfg, size)
    values.update(f_values)
    reasons.update(f_reasons)
    others = ndimage.binary_dilation(every & ~main, iterations=1) & ~main  # stars, neighbours: masked
    s_values, s_reasons, s_flags = _statmorph(lum_sub, main, others, sigma_ref, cfg)
    values.update(s_values)
    reasons.update(s_reasons)
    flags += s_flags
    edges = np.linspace(0.0, size / 2.0, bins + 1)
    profile = radial_profile(lum_sub, (xc, yc), edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        colour_profile = -2.5 * np.log10(radial_profile(blue, (xc, yc), edges) / radial_profile(red, (xc, yc), edges))
    colour_profile[~np.isfinite(colour_profile) | (profile < sigma_ref)] = np.nan  # no colour of the sky
    return Measurement({d: float(values.get(d, float("nan"))) for d in DIAGNOSTICS}, reasons, flags, profile,
                       colour_profile)
