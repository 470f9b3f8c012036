"""Render synthetic Galaxy Zoo 2 cutouts (424x424 RGB, SDSS gri-like composites).

The geometry follows the real GZ2 cutouts (Willett et al. 2013): the galaxy sits in the
centre at 0.02 x petroR90_r arcsec per pixel, so its R90 is about 50 px at 424 px and the
outer three quarters of the frame is sky. A galaxy is built from physical components
(Sersic ellipticals and bulges, exponential disks, thin edge-on disks, bars, logarithmic
spiral arms with star-forming knots) in three bands (g, r, i), seen through a Gaussian
PSF whose width in pixels grows as the galaxy gets smaller on the sky, with correlated
sky noise (upsampled SDSS pixels), foreground stars and neighbour galaxies drawn from the
same distributions for every class. Bands are combined as (R, G, B) = (i, r, g) with a
Lupton asinh stretch.

Everything that makes a galaxy hard to classify (small angular size -> big PSF and
blocky noise, low S/N, weak bar or arms, axis ratio near a class boundary, thick
edge-on disk) is driven by one number per galaxy, ``clarity`` in [0, 1], which the vote
simulator also uses: confident votes go with clear images.

This module draws the image (geometry: the components' light profiles on the pixel grid;
photometry: PSF, sky noise, the colour stretch) from a galaxy's properties, drawn by
:mod:`galaxy_distillation.sky.properties`.

Public API: :func:`render_properties`, :func:`render_galaxy`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from .properties import DISK_GRI, KNOT_GRI, RED_GRI, REFERENCE_SIZE, RenderError, draw_properties


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise RenderError(f"size must be an int >= 16, got {size!r}")
    return int(size)


# --------------------------------------------------------------------------------------
# profiles (all return float32 arrays shaped like the coordinate arrays)


def _sersic_b(n: float) -> float:
    """Ciotti & Bertin approximation of b_n (half-light normalisation)."""
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n)


def _sersic(r: np.ndarray, re: float, n: float) -> np.ndarray:
    """Sersic profile normalised to 1 at r = re; r is an elliptical radius (H, W)."""
    b = _sersic_b(n)
    return np.exp(-b * (np.power(np.maximum(r, 0.35) / re, 1.0 / n) - 1.0), dtype=np.float32)


def _r90_over_re(n: float) -> float:
    """Approximate Petrosian R90/R50 of a Sersic profile (2.3 at n=1, 3.1 at n=4)."""
    return 2.3 + 0.27 * (n - 1.0)


def _normalise(layer: np.ndarray, total: float) -> np.ndarray:
    s = float(layer.sum(dtype=np.float64))
    return layer * np.float32(total / s) if s > 0 else layer


def _deposit(img: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray) -> None:
    """Bilinear deposit of point sources into img (B, H, W); flux (N, B)."""
    _, h, w = img.shape
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        for b in range(img.shape[0]):
            np.add.at(img[b], (yi[ok], xi[ok]), (flux[ok, b] * wt[ok]).astype(np.float32))


def _galaxy_layers(p: dict[str, Any], size: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Noise-free, PSF-free (3, size, size) g, r, i image of the main galaxy.

    Returns the image and the r-band surface brightness at R50 (for the noise scale).
    """
    s = size / REFERENCE_SIZE
    r90 = p["r90_px"] * s
    half = int(min(size // 2, math.ceil(3.6 * r90)))
    c0 = (size - 1) / 2.0
    cx = c0 + p["centre_offset"][0] * s
    cy = c0 + p["centre_offset"][1] * s
    lo = int(round(c0)) - half
    hi = int(round(c0)) + half
    lo, hi = max(lo, 0), min(hi, size)
    ys, xs = np.mgrid[lo:hi, lo:hi].astype(np.float32)
    xs -= np.float32(cx)
    ys -= np.float32(cy)
    pa = p["position_angle"]
    ca, sa = np.float32(math.cos(pa)), np.float32(math.sin(pa))
    u = xs * ca + ys * sa  # major axis
    v = -xs * sa + ys * ca  # minor axis
    band = np.zeros((3, hi - lo, hi - lo), dtype=np.float32)
    cls = p["true_class"]
    total = 1000.0 * p["brightness"] * s * s

    def add(layer: np.ndarray, flux: float, colour: list[float]) -> None:
        if flux <= 0:
            return
        layer = _normalise(layer, flux)
        for b in range(3):
            band[b] += layer * np.float32(colour[b])

    if cls <= 2:
        n = p["sersic_n"]
        re = r90 / _r90_over_re(n)
        r = np.sqrt(u * u + (v / np.float32(p["axis_ratio"])) ** 2)
        add(_sersic(r, re, n), total, p["colour_main"])
        r50_r = re
    elif cls <= 4:
        h = r90 / 3.9 * 1.05
        z0 = p["disk_thickness"] * h * 1.6
        bt = p["bulge_fraction"]
        ez = np.exp(-2.0 * np.abs(v) / np.float32(z0))
        disk = np.exp(-np.abs(u) / np.float32(h)) * (4.0 * ez / (1.0 + ez) ** 2)  # sech^2
        if p["dust_lane"] > 0:
            lane = np.exp(-0.5 * (v / np.float32(0.25 * z0 + 0.6 * s)) ** 2) * np.exp(-np.abs(u) / np.float32(3 * h))
            for b, k in enumerate((1.3, 1.0, 0.8)):
                band_disk = disk * (1.0 - np.float32(p["dust_lane"] * k * 0.7) * lane)
                band[b] += _normalise(band_disk, total * (1 - bt)) * np.float32(p["colour_disk"][b])
        else:
            add(disk, total * (1 - bt), p["colour_disk"])
        if bt > 0:
            n = p["sersic_n"]
            re = 0.5 * h
            r = np.sqrt(u * u + (v / np.float32(0.8)) ** 2)
            add(_sersic(r, re, n), total * bt, p["colour_main"])
        r50_r = 1.68 * h
    else:
        h = r90 / 3.9
        q = np.float32(p["axis_ratio"])
        vd = v / q  # disk-plane coordinates (u, vd)
        r = np.sqrt(u * u + vd * vd)
        bt, bar_f, arm_f = p["bulge_fraction"], p["bar_fraction"], p["arm_fraction"]
        disk_f = max(1.0 - bt - bar_f - arm_f, 0.05)
        add(np.exp(-r / np.float32(h)), total * disk_f, p["colour_disk"])
        re_b = 0.22 * h
        add(_sersic(np.sqrt(u * u + (v / np.float32(max(q, 0.75))) ** 2), re_b, p["sersic_n"]), total * bt, p["colour_main"])
        bar_len = p["bar_length_px"] * s
        if bar_f > 0:
            ba = p["bar_angle"]
            cb, sb = np.float32(math.cos(ba)), np.float32(math.sin(ba))
            bu = u * cb + vd * sb
            bv = -u * sb + vd * cb
            rb = np.sqrt(bu * bu + (bv / np.float32(p["bar_axis_ratio"])) ** 2) / np.float32(bar_len)
            add(np.exp(-(rb**3)), total * bar_f, p["colour_main"])
        if arm_f > 0:
            m = p["n_arms"]
            cot = 1.0 / math.tan(math.radians(p["pitch_deg"]))
            r0 = bar_len if bar_f > 0 else 0.5 * h
            phi0 = p["bar_angle"] if bar_f > 0 else float(rng.uniform(0, 2 * np.pi))
            phi = np.arctan2(vd, u)
            lr = np.log(np.maximum(r, 0.5) / np.float32(r0))
            psi = np.float32(m) * (phi - np.float32(phi0) - np.float32(cot) * lr)
            sharp = 4.0 + 2.0 * rng.random()
            pattern = (0.5 * (1.0 + np.cos(psi))) ** np.float32(sharp)
            envelope = np.exp(-r / np.float32(1.25 * h)) * (1.0 - np.exp(-((r / np.float32(r0)) ** 2)))
            add(pattern * envelope, total * arm_f * 0.8, p["colour_arm"])
            # star-forming knots along the arms
            k = p["n_knots"]
            kr = np.clip(r0 + rng.gamma(2.0, 0.9 * h, k), r0, 3.5 * h)
            arm_id = rng.integers(0, m, k)
            kphi = phi0 + np.log(kr / r0) * cot + 2 * np.pi * arm_id / m + rng.normal(0, 0.08, k)
            ku, kvd = kr * np.cos(kphi), kr * np.sin(kphi)
            kx = ku * math.cos(pa) - kvd * float(q) * math.sin(pa) + cx - lo
            ky = ku * math.sin(pa) + kvd * float(q) * math.cos(pa) + cy - lo
            kflux = rng.exponential(1.0, k)
            kflux = kflux / kflux.sum() * total * arm_f * 0.2
            _deposit(band, kx, ky, kflux[:, None] * np.array(KNOT_GRI, dtype=np.float64)[None, :])
        r50_r = 1.68 * h
    # surface brightness (r band) at R50 of an equivalent round exponential: total / (2 pi re^2) scale
    tilt = p.get("colour_tilt", 0.0)
    band[0] *= np.float32(math.exp(tilt))
    band[2] *= np.float32(math.exp(-tilt))
    sb50 = total / (2.0 * math.pi * max(r50_r, 1.0) ** 2) * 0.5
    full = np.zeros((3, size, size), dtype=np.float32)
    full[:, lo:hi, lo:hi] = band
    return full, sb50


def _add_stars_and_neighbours(img: np.ndarray, p: dict[str, Any], sb50: float, rng: np.random.Generator) -> None:
    """Add foreground stars (points, PSF applied later) and neighbour galaxies (in place).

    The distributions do not depend on the galaxy class (no shortcut).
    """
    _, size, _ = img.shape
    s = size / REFERENCE_SIZE
    n_stars = int(p["n_stars"])
    if n_stars:
        xy = rng.uniform(0, size - 1, (n_stars, 2))
        flux = sb50 * 40.0 * s * s * np.exp(rng.uniform(np.log(0.5), np.log(400.0), n_stars))
        gr = rng.uniform(0.35, 1.1, n_stars)
        ir = rng.uniform(0.95, 1.35, n_stars)
        cols = np.stack([gr, np.ones(n_stars), ir], axis=1)
        _deposit(img, xy[:, 0], xy[:, 1], flux[:, None] * cols)
    n_nb = int(p["n_neighbours"])
    for _ in range(n_nb):
        re = float(np.exp(rng.uniform(np.log(2.0), np.log(14.0)))) * s
        n = float(rng.uniform(0.8, 4.0))
        q = float(rng.uniform(0.3, 1.0))
        pa = float(rng.uniform(0, np.pi))
        x0, y0 = rng.uniform(0, size - 1, 2)
        half = int(math.ceil(min(8 * re, size / 2)))
        xl, xh = max(int(x0) - half, 0), min(int(x0) + half + 1, size)
        yl, yh = max(int(y0) - half, 0), min(int(y0) + half + 1, size)
        ys, xs = np.mgrid[yl:yh, xl:xh].astype(np.float32)
        xs -= np.float32(x0)
        ys -= np.float32(y0)
        u = xs * math.cos(pa) + ys * math.sin(pa)
        v = (-xs * math.sin(pa) + ys * math.cos(pa)) / q
        layer = _sersic(np.sqrt(u * u + v * v), re, n)
        layer = _normalise(layer, sb50 * 2 * math.pi * re * re * float(np.exp(rng.uniform(np.log(0.3), np.log(3.0)))))
        mix = rng.random()
        col = mix * RED_GRI + (1 - mix) * DISK_GRI
        for b in range(3):
            img[b, yl:yh, xl:xh] += layer * np.float32(col[b])


def _sky_noise(size: int, corr_px: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Correlated sky noise (3, size, size): SDSS pixels of width corr_px upsampled.

    Each band has standard deviation ``sigma`` (g slightly noisier).
    """
    step = max(corr_px, 1.0)
    n = int(math.ceil(size / step)) + 2
    coarse = rng.standard_normal((3, n, n), dtype=np.float32)
    if step > 1.0:
        # separable bilinear upsampling of the coarse grid (cheap fancy indexing)
        pos = (np.arange(size, dtype=np.float32) + 0.5) / np.float32(step) + 0.5
        i0 = np.minimum(pos.astype(np.int64), n - 2)
        f = (pos - i0).astype(np.float32)
        rows = coarse[:, i0, :] * (1 - f)[None, :, None] + coarse[:, i0 + 1, :] * f[None, :, None]
        noise = rows[:, :, i0] * (1 - f)[None, None, :] + rows[:, :, i0 + 1] * f[None, None, :]
        noise /= np.float32(noise.std() + 1e-6)
    else:
        noise = coarse[:, :size, :size]
    scales = np.array([1.25, 1.0, 1.1], dtype=np.float32)[:, None, None]
    return noise * (scales * np.float32(sigma))


def _lupton_rgb(gri: np.ndarray, noise_sigma: float, q: float = 8.0, stretch: float | None = None) -> np.ndarray:
    """Asinh (Lupton et al. 2004) composite of (3, H, W) g, r, i into uint8 (H, W, 3) RGB=(i, r, g)."""
    rgb = gri[::-1]  # (i, r, g)
    inten = rgb.mean(axis=0)
    if stretch is None:
        stretch = 10.0 * noise_sigma
    f = np.arcsinh(np.float32(q) * np.maximum(inten, 0) / np.float32(stretch)) / np.float32(q)
    scale = np.where(inten > 1e-12, f / np.maximum(inten, 1e-12), np.float32(1.0 / stretch))
    out = rgb * scale[None] * np.float32(1.6)
    # keep hue when a channel saturates
    mx = np.maximum(out.max(axis=0), 1.0)
    out = np.clip(out / mx[None], 0.0, 1.0)
    return (out.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)


def render_properties(props: dict[str, Any], rng: np.random.Generator, size: int = REFERENCE_SIZE) -> tuple[np.ndarray, dict[str, Any]]:
    """Render the image of a galaxy described by :func:`draw_properties`.

    Args:
        props: the property dict (not modified).
        rng: generator for the image noise, stars, neighbours and knots.
        size: output side in pixels (lengths are scaled by size / 424).

    Returns:
        ``(image, props)``: uint8 array (size, size, 3) RGB and a copy of props.
    """
    size = _check_size(size)
    s = size / REFERENCE_SIZE
    p = dict(props)
    img, sb50 = _galaxy_layers(p, size, rng)
    _add_stars_and_neighbours(img, p, sb50, rng)
    psf = max(p["psf_sigma_px"] * s, 0.7)
    img = ndimage.gaussian_filter(img, sigma=(0, psf, psf), truncate=3.0, mode="constant")
    sigma = sb50 / p["snr"]
    img += _sky_noise(size, p["noise_corr_px"] * s, sigma, rng)
    return _lupton_rgb(img, sigma), p


def render_galaxy(true_class: int, rng: np.random.Generator, size: int = REFERENCE_SIZE) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw and render one synthetic GZ2 galaxy of class ``true_class``.

    Args:
        true_class: 0 smooth round, 1 smooth in-between, 2 smooth cigar, 3 edge-on with
            bulge, 4 edge-on no bulge, 5 face-on bar+spiral, 6 face-on bar no spiral,
            7 face-on no bar spiral, 8 face-on no bar no spiral.
        rng: the only source of randomness (same generator state -> same image).
        size: image side in pixels (424 like the real cutouts).

    Returns:
        ``(image, props)``: uint8 (size, size, 3) RGB image and the galaxy's physical
        properties (including ``clarity``) for the truth table.
    """
    props = draw_properties(true_class, rng)
    return render_properties(props, rng, size)
