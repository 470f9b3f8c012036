"""Load and preprocess the GZ2 cutouts (424x424 RGB JPEG); finding them: :mod:`.paths`.

Geometry (REFERENCE.md section 1): keep the central half of the image (rows and
columns ``H//4 .. H - H//4``, i.e. 106..318 of 424), area-resize it to S x S.
Rotation augmentation rotates the FULL image about its centre (bilinear) before
cropping, so no rotated corner shows: the crop's corners lie at
``sqrt(2) * H/4 ~= 0.354 H`` from the centre, inside the inscribed circle
(radius ``H/2``) that stays filled under any rotation.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

from .errors import (
    EmptyDatasetError,
    ParameterError,
    UnreadableImageError,
)

if TYPE_CHECKING:  # torch is imported lazily so image workers start fast
    import torch

#: Size of the real GZ2 cutouts.
NATIVE_SIZE: int = 424


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB.

    Grayscale, palette, RGBA (alpha dropped), CMYK... are converted to RGB.

    Args:
        path: image file.

    Returns:
        uint8 array (H, W, 3).

    Raises:
        UnreadableImageError: missing, truncated or corrupt file.
    """
    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadableImageError(f"cannot read image {path}: {exc}") from exc
    return np.asarray(rgb, dtype=np.uint8).copy()


def _check_image(img: np.ndarray) -> None:
    """Raise ParameterError unless ``img`` is (H, W, 3) with H, W >= 2."""
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 2 or img.shape[1] < 2:
        raise ParameterError(f"expected an (H, W, 3) image with H, W >= 2, got shape {img.shape}")


def center_square(img: np.ndarray) -> np.ndarray:
    """Central square of side ``min(H, W)`` of an (H, W, C) image (no-op if square)."""
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return img[top : top + s, left : left + s]


def crop_center_half(img: np.ndarray) -> np.ndarray:
    """Keep the central half: rows ``H//4 .. H - H//4``, cols ``W//4 .. W - W//4``.

    Symmetric about the centre for any size (so it commutes with ``np.rot90`` on
    square images); 424 -> rows/cols 106..318 (212 px), as the reference.

    Args:
        img: array (H, W, C) or (H, W).

    Returns:
        view (H - 2*(H//4), W - 2*(W//4), ...).
    """
    if img.ndim < 2 or img.shape[0] < 2 or img.shape[1] < 2:
        raise ParameterError(f"cannot crop an image of shape {img.shape}")
    h, w = img.shape[:2]
    return img[h // 4 : h - h // 4, w // 4 : w - w // 4]


def area_resize(img: np.ndarray, size: int) -> np.ndarray:
    """Area (box-average) resize of a uint8 (H, W, 3) image to (size, size, 3).

    Uses Pillow's BOX filter, which averages every source pixel covered by an
    output pixel (fractional coverage weighted), like ``F.interpolate(mode="area")``.
    """
    _check_image(img)
    if int(size) < 1:
        raise ParameterError(f"image size must be >= 1, got {size}")
    if img.shape[0] == size and img.shape[1] == size:
        return np.ascontiguousarray(img)
    out = Image.fromarray(np.ascontiguousarray(img)).resize((size, size), Image.Resampling.BOX)
    return np.asarray(out, dtype=np.uint8)


_RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}


def _resample(interpolation: str) -> Image.Resampling:
    if interpolation not in _RESAMPLE:
        raise ParameterError(f"rotation interpolation must be one of {sorted(_RESAMPLE)}, got {interpolation!r}")
    return _RESAMPLE[interpolation]


def rotated_center_half(img: np.ndarray, angle_deg: float, interpolation: str = "bilinear") -> np.ndarray:
    """Central half of the image rotated about its centre (``interpolation``: bilinear, or
    nearest as the reference's PIL ``rotate`` does), uint8.

    Equivalent to rotating the whole (H, W, 3) image counter-clockwise by
    ``angle_deg`` (as displayed, like ``np.rot90``; Pillow's ``Image.rotate``
    convention, centre ``(W/2, H/2)``) and then applying
    :func:`crop_center_half`, but only the cropped pixels are interpolated (about
    4x faster). Multiples of 90 degrees are exact pixel permutations (square
    images only, where the crop commutes with ``np.rot90``).

    Args:
        img: uint8 (H, W, 3).
        angle_deg: angle in degrees.

    Returns:
        uint8 (H - 2*(H//4), W - 2*(W//4), 3).
    """
    _check_image(img)
    resample = _resample(interpolation)
    h, w = img.shape[:2]
    angle = float(angle_deg) % 360.0
    if angle == 0.0:
        return np.ascontiguousarray(crop_center_half(img))
    if h == w and angle in (90.0, 180.0, 270.0):
        return np.ascontiguousarray(np.rot90(crop_center_half(img), int(angle // 90)))
    top, left = h // 4, w // 4
    ch, cw = h - 2 * top, w - 2 * left
    # inverse map, output pixel (x, y) of the crop -> input (u, v); all in pixel
    # units with Pillow's half-pixel convention. Rotation by +angle (CCW as shown,
    # y axis down) has the inverse [[cos, -sin], [sin, cos]] about the centre.
    theta = math.radians(angle)
    cos_t, sin_t = round(math.cos(theta), 15), round(math.sin(theta), 15)
    cx, cy = w / 2.0, h / 2.0
    a, b = cos_t, -sin_t
    d, e = sin_t, cos_t
    c = cx - a * (cx - left) - b * (cy - top)
    f = cy - d * (cx - left) - e * (cy - top)
    out = Image.fromarray(np.ascontiguousarray(img)).transform(
        (cw, ch), Image.Transform.AFFINE, (a, b, c, d, e, f), resample=resample
    )
    return np.asarray(out, dtype=np.uint8)


def rotate_then_crop(img: np.ndarray, angle_deg: float, out_size: int, interpolation: str = "bilinear") -> np.ndarray:
    """Rotate the full image about its centre, then crop its central half, then resize.

    Rotation is counter-clockwise (as displayed, like ``np.rot90``), bilinear,
    about the image centre (see :func:`rotated_center_half`). A non-square image
    is first reduced to its central square so that the central-half crop always
    stays inside the inscribed circle: the crop corners lie at
    ``sqrt(2) * S/4 < S/2`` from the centre, so no rotated (empty) corner shows.

    Args:
        img: uint8 (H, W, 3).
        angle_deg: rotation angle in degrees (counter-clockwise).
        out_size: output side S.

    Returns:
        uint8 (S, S, 3).
    """
    _check_image(img)
    sq = center_square(img)
    s = sq.shape[0]
    half = s - 2 * (s // 4)
    if math.hypot(half / 2, half / 2) > s / 2:  # pragma: no cover - impossible for s >= 2
        raise ParameterError(f"central crop of a {s}px image would show rotated corners")
    return area_resize(rotated_center_half(sq, angle_deg, interpolation), out_size)


def preprocess_galaxy(
    path: str, image_size: int, rotations: int, interpolation: str = "bilinear"
) -> tuple[np.ndarray | None, tuple[int, int] | None, str | None]:
    """Load one galaxy and produce its ``rotations`` views.

    Args:
        path: image file.
        image_size: output side S.
        rotations: number of views; view k uses angle ``360 / rotations * k``.
        interpolation: of the rotation, ``bilinear`` or ``nearest`` (the reference's).

    Returns:
        ``(views, (H, W), error)``: uint8 (rotations, 3, S, S) and the source
        size, or ``(None, None, message)`` when the image is unreadable.
    """
    try:
        img = load_image(path)
    except UnreadableImageError as exc:
        return None, None, str(exc)
    views = np.empty((rotations, 3, image_size, image_size), dtype=np.uint8)
    for k in range(rotations):
        views[k] = rotate_then_crop(img, 360.0 / rotations * k, image_size, interpolation).transpose(2, 0, 1)
    return views, (int(img.shape[0]), int(img.shape[1])), None


def _preprocess_star(args: tuple[str, int, int, str]):
    """Picklable adapter of :func:`preprocess_galaxy` for process pools."""
    return preprocess_galaxy(*args)


def load_split_tensors(
    paths_df: pd.DataFrame,
    image_size: int,
    rotations: int = 1,
    progress: bool = True,
    n_workers: int = 1,
    interpolation: str = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Load, crop, (rotate) and resize the images of one split.

    Ordering is **galaxy-major**: output row ``i * rotations + k`` is view k
    (angle ``360 / rotations * k`` degrees; k = 0 is the plain crop) of the i-th
    loaded galaxy, galaxies in ``paths_df`` order (unreadable ones skipped). With
    ``n_workers > 1`` a process pool (fork on Linux, spawn elsewhere) is used; the
    order and the values are the same.

    Args:
        paths_df: frame with ``path`` and ``label`` (``dr7objid`` optional, used in
            the report), N rows.
        image_size: output side S (paper: 128).
        rotations: views per galaxy (1: no augmentation; 10: 36 degree steps).
        progress: show a tqdm bar.
        n_workers: processes (1 = in-process).
        interpolation: of the rotations, ``bilinear`` or ``nearest`` (curation's default, the reference's).

    Returns:
        ``(images, labels, report)``: images uint8 tensor (M * rotations, 3, S, S),
        labels int64 tensor (M * rotations,), M = loaded galaxies; report has
        ``n_requested``, ``n_loaded``, ``n_unreadable``, ``unreadable_ids``,
        ``unreadable_errors`` (first 20 messages),
        ``n_other_size``, ``other_size_ids`` (first 100), ``other_sizes``
        (``"HxW"`` -> count), ``rotations``, ``image_size``, ``ordering``
        (``"galaxy-major"``) and ``loaded_ids`` (M ids, or row indices when the
        frame has no ``dr7objid``).

    Raises:
        ParameterError: bad size / rotations / workers / missing columns.
        EmptyDatasetError: no image could be loaded.
    """
    import torch
    from tqdm.auto import tqdm

    missing = [c for c in ("path", "label") if c not in paths_df.columns]
    if missing:
        raise ParameterError(f"paths frame lacks column(s): {', '.join(missing)}")
    if int(image_size) < 1 or int(rotations) < 1 or int(n_workers) < 1:
        raise ParameterError(
            f"image_size, rotations and n_workers must be >= 1, got {image_size}, {rotations}, {n_workers}"
        )
    s, r = int(image_size), int(rotations)
    n = len(paths_df)
    ids = (
        paths_df["dr7objid"].to_numpy(dtype=np.int64).tolist()
        if "dr7objid" in paths_df.columns
        else list(range(n))
    )
    labels_in = paths_df["label"].to_numpy(dtype=np.int64)
    paths = [str(p) for p in paths_df["path"]]
    images = torch.empty((n * r, 3, s, s), dtype=torch.uint8)
    labels = torch.empty((n * r,), dtype=torch.int64)
    _resample(interpolation)
    jobs = [(p, s, r, interpolation) for p in paths]

    if int(n_workers) > 1 and n > 1:
        # fork is fast and safe here: workers only use PIL/numpy, never torch
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        pool = ProcessPoolExecutor(max_workers=int(n_workers), mp_context=ctx)
        chunk = max(1, min(64, n // (4 * int(n_workers)) or 1))
        results = pool.map(_preprocess_star, jobs, chunksize=chunk)
    else:
        pool = None
        results = map(_preprocess_star, jobs)

    m = 0
    unreadable: list[int] = []
    errors: list[str] = []
    other_ids: list[int] = []
    other_sizes: dict[str, int] = {}
    loaded_ids: list[int] = []
    try:
        for i, (views, hw, err) in enumerate(
            tqdm(results, total=n, desc=f"images x{r}", disable=not progress)
        ):
            if views is None:
                unreadable.append(ids[i])
                errors.append(str(err))
                continue
            images[m * r : (m + 1) * r] = torch.from_numpy(views)
            labels[m * r : (m + 1) * r] = int(labels_in[i])
            loaded_ids.append(ids[i])
            if hw != (NATIVE_SIZE, NATIVE_SIZE):
                other_ids.append(ids[i])
                key = f"{hw[0]}x{hw[1]}"
                other_sizes[key] = other_sizes.get(key, 0) + 1
            m += 1
    finally:
        if pool is not None:
            pool.shutdown()
    if m == 0:
        raise EmptyDatasetError(f"none of the {n} images could be loaded")
    report = {
        "n_requested": int(n),
        "n_loaded": int(m),
        "n_unreadable": len(unreadable),
        "unreadable_ids": unreadable,
        "unreadable_errors": errors[:20],
        "n_other_size": len(other_ids),
        "other_size_ids": other_ids[:100],
        "other_sizes": other_sizes,
        "rotations": r,
        "image_size": s,
        "ordering": "galaxy-major",
        "loaded_ids": loaded_ids,
    }
    if m < n:  # drop the unused tail (copy, so the spare memory is released)
        return images[: m * r].clone(), labels[: m * r].clone(), report
    return images, labels, report
