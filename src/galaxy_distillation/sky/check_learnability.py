"""Quick learnability check of a mock sky: are the classes learnable but not trivial?

Crops the central half of each image (rows/cols H/4..3H/4), area-downsamples it to
``image_size`` x ``image_size`` and fits multinomial logistic regressions on the true
classes (stratified 75/25 split, seeded):

* ``pixels``: all pixels (standardised) -> the headline accuracy;
* ``colour_only``: mean and std of each channel in the central crop;
* ``one_per_class``: pixels, trained on a single random image per class.

Run: ``python -m galaxy_distillation.sky.check_learnability <out_dir> [image_size]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from .writer import TRUTH_NAME


class LearnabilityError(ValueError):
    """The folder does not hold a mock sky."""


def load_crops(out_dir: str | Path, image_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Central-half crops of every mock image, area-resized.

    Returns:
        ``(x, y)``: float32 (N, image_size, image_size, 3) in [0, 1] and int (N,) true classes.
    """
    out = Path(out_dir)
    truth_path = out / TRUTH_NAME
    if not truth_path.exists():
        raise LearnabilityError(f"no {TRUTH_NAME} in {out}: not a mock sky folder")
    truth = pd.read_csv(truth_path, usecols=["asset_id", "true_class"]).sort_values("asset_id")
    xs = []
    for asset in truth["asset_id"]:
        with Image.open(out / "images" / f"{asset}.jpg") as im:
            w, h = im.size
            crop = im.convert("RGB").crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4))
            xs.append(np.asarray(crop.resize((image_size, image_size), Image.Resampling.BOX), dtype=np.float32) / 255.0)
    return np.stack(xs), truth["true_class"].to_numpy()


def _fit(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, c: float) -> float:
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit(scaler.transform(xtr), ytr)
    return float((clf.predict(scaler.transform(xte)) == yte).mean())


def learnability_report(out_dir: str | Path, image_size: int = 32, seed: int = 0) -> dict[str, Any]:
    """Logistic-regression accuracies on a mock sky (see module docstring).

    Returns:
        dict with ``n``, ``image_size``, ``pixels``, ``colour_only``, ``one_per_class``
        accuracies and ``chance`` (majority-class rate).
    """
    x, y = load_crops(out_dir, image_size)
    n = len(y)
    flat = x.reshape(n, -1)
    colour = np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)
    idx_tr, idx_te = train_test_split(np.arange(n), test_size=0.25, random_state=seed, stratify=y)
    rng = np.random.default_rng(seed)
    one = np.array([rng.choice(idx_tr[y[idx_tr] == k]) for k in np.unique(y)])
    report = {
        "n": int(n),
        "image_size": int(image_size),
        "pixels": _fit(flat[idx_tr], y[idx_tr], flat[idx_te], y[idx_te], c=0.01),
        "colour_only": _fit(colour[idx_tr], y[idx_tr], colour[idx_te], y[idx_te], c=1.0),
        "one_per_class": _fit(flat[one], y[one], flat[idx_te], y[idx_te], c=1.0),
        "chance": float(np.bincount(y).max() / n),
    }
    return report


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python -m galaxy_distillation.sky.check_learnability <out_dir> [image_size]")
        raise SystemExit(2)
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    print(json.dumps(learnability_report(sys.argv[1], size), indent=2))
