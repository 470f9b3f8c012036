"""A small generated image folder whose classes are learnable (for tests and demos).

Class ``i`` is a filled shape (disc, square, triangle, cross, ring, horizontal bar,
vertical bar, diamond; cycling when there are more than 8 classes) in its own hue
(hues evenly spaced around the colour wheel). Every image varies the shape's position,
size, rotation (+-20 degrees), hue (+-0.03), saturation and brightness, over a random
dark background with Gaussian pixel noise and a small distractor dot of random colour.
So a single random image per class is a weak classifier, while the class (shape + hue)
is easy to learn from a few dozen examples.

Images alternate between PNG (even index) and JPEG (odd index) so both codecs are
exercised. A hidden ``.toy_image_folder.json`` records the parameters; calling again
with the same parameters on the same folder returns it untouched.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
from PIL import Image

from .base import DataSourceError

__all__ = ["SHAPES", "make_toy_image_folder", "toy_image"]

SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "cross", "ring", "hbar", "vbar", "diamond")
_MARKER = ".toy_image_folder.json"


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of ``shape`` in shape coordinates ``(u, v)`` (unit = shape radius)."""
    if shape == "disc":
        return u**2 + v**2 <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == "triangle":
        return (v <= 0.6) & (np.abs(u) <= (v + 0.9) * 0.65)
    if shape == "cross":
        return ((np.abs(u) <= 0.28) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.28) & (np.abs(u) <= 0.95))
    if shape == "ring":
        rr = u**2 + v**2
        return (rr <= 1.0) & (rr >= 0.5**2)
    if shape == "hbar":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 0.32)
    if shape == "vbar":
        return (np.abs(u) <= 0.32) & (np.abs(v) <= 1.0)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    raise DataSourceError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1] -> RGB float array of shape ``(3,)`` in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)))


def toy_image(class_index: int, n_classes: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one ``(size, size, 3)`` uint8 RGB image of class ``class_index``.

    Args:
        class_index: class in ``[0, n_classes)``; shape ``SHAPES[class_index % 8]``,
            hue ``class_index / n_classes``.
        n_classes: number of classes (spaces the hues).
        size: image side in pixels.
        rng: source of all randomness.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    img = rng.uniform(0.0, 0.3, size=3)[None, None, :] * np.ones((size, size, 1))

    r = rng.uniform(0.22, 0.36) * size
    cx, cy = rng.uniform(r, size - r, size=2)
    theta = np.deg2rad(rng.uniform(-20.0, 20.0))
    dx, dy = (xx - cx) / r, (yy - cy) / r
    u = np.cos(theta) * dx + np.sin(theta) * dy
    v = -np.sin(theta) * dx + np.cos(theta) * dy
    mask = _shape_mask(SHAPES[class_index % len(SHAPES)], u, v)
    colour = _hsv(
        class_index / n_classes + rng.uniform(-0.03, 0.03),
        rng.uniform(0.6, 1.0),
        rng.uniform(0.65, 1.0),
    )
    img[mask] = colour

    # distractor dot of random colour, anywhere
    dr = max(1.0, 0.08 * size)
    ex, ey = rng.uniform(0, size, size=2)
    dot = (xx - ex) ** 2 + (yy - ey) ** 2 <= dr**2
    img[dot] = _hsv(rng.uniform(), rng.uniform(0.3, 1.0), rng.uniform(0.4, 1.0))

    img = img + rng.normal(0.0, 0.06, size=img.shape)
    return (np.clip(img, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def make_toy_image_folder(
    root: str | Path,
    n_classes: int = 4,
    n_per_class: int = 30,
    size: int = 24,
    seed: int = 0,
    split: bool = False,
) -> Path:
    """Write a generated labelled image folder (see the module docstring).

    Layout: ``root/<NN>_<shape>/<NN>_<shape>_<k>.{png,jpg}``, or with ``split=True``
    ``root/train/<class>/...`` and ``root/test/<class>/...`` where each class's
    ``n_per_class`` images are divided 80/20 (at least one test image).

    Args:
        root: output folder; must be absent, empty, or a toy folder made with the same
            parameters (then it is returned as is).
        n_classes: number of classes (>= 1; 1 is allowed for testing error paths).
        n_per_class: images per class in total (>= 1; >= 2 with ``split``).
        size: image side in pixels (>= 8).
        seed: seed of all randomness; same arguments give byte-identical PNGs.
        split: write a pre-split ``train``/``test`` layout.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        DataSourceError: bad arguments, or ``root`` holds something else.
    """
    if n_classes < 1:
        raise DataSourceError(f"n_classes must be >= 1, got {n_classes}")
    if n_per_class < (2 if split else 1):
        raise DataSourceError(f"n_per_class must be >= {2 if split else 1}, got {n_per_class}")
    if size < 8:
        raise DataSourceError(f"size must be >= 8, got {size}")
    root = Path(root).expanduser()
    params = {
        "n_classes": int(n_classes),
        "n_per_class": int(n_per_class),
        "size": int(size),
        "seed": int(seed),
        "split": bool(split),
    }
    if root.exists():
        if not root.is_dir():
            raise DataSourceError(f"{root} exists and is not a directory")
        if any(root.iterdir()):
            marker = root / _MARKER
            if marker.is_file() and json.loads(marker.read_text()) == params:
                return root
            raise DataSourceError(
                f"{root} is not empty and is not a toy folder made with these parameters; "
                f"delete it or choose another folder"
            )
    root.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    n_test = min(max(1, int(round(0.2 * n_per_class))), n_per_class - 1) if split else 0
    for c in range(n_classes):
        name = f"{c:02d}_{SHAPES[c % len(SHAPES)]}"
        for k in range(n_per_class):
            arr = toy_image(c, n_classes, size, rng)
            if split:
                folder = root / ("test" if k < n_test else "train") / name
            else:
                folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            stem = folder / f"{name}_{k:04d}"
            if k % 2 == 0:
                Image.fromarray(arr).save(stem.with_suffix(".png"))
            else:
                Image.fromarray(arr).save(stem.with_suffix(".jpg"), quality=92)
    (root / _MARKER).write_text(json.dumps(params, sort_keys=True))
    return root
