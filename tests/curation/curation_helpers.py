"""Shared helpers for the curation tests: tiny hand-made catalogues and images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_distillation.curation.catalogue import ANSWER_COLUMNS, ANSWERS

#: Real GZ2 files carried in the repository (tests/data/README.md says what they are).
DATA = Path(__file__).resolve().parents[1] / "data"
HART_HEADER = DATA / "gz2_hart16_columns.txt"
STRIPE82 = DATA / "gz2_stripe82_coadd2_votes.csv.gz"

#: a 19-digit id that float64 cannot represent exactly
BIG_ID = 8647474690312307154


def hart_columns() -> list[str]:
    """The 231 Hart 2016 column names from the shared header file."""
    return [c.strip() for c in HART_HEADER.read_text().split() if c.strip()]


def canonical_row(**fractions: float) -> dict[str, float]:
    """One canonical catalogue row: every answer 0 except those given."""
    row = {c: 0.0 for c in ANSWER_COLUMNS}
    for k, v in fractions.items():
        assert k in row, k
        row[k] = float(v)
    return row


def write_hart_csv(path: Path, ids: list, rows: list[dict], suffix: str = "fraction",
                   other: float = 0.5) -> Path:
    """Write a Hart-format CSV; answer columns `<prefix>_<suffix>` get the row values.

    Every other numeric column is filled with `other` (so reading the wrong
    suffix would be noticed). Values may be strings (to test non-numeric input).
    """
    cols = hart_columns()
    data = {c: [other] * len(ids) for c in cols}
    data["dr7objid"] = [str(i) for i in ids]
    data["gz2_class"] = ["Ei"] * len(ids)
    for short, prefix in ANSWERS.items():
        data[f"{prefix}_{suffix}"] = [r[short] for r in rows]
    pd.DataFrame(data, columns=cols).to_csv(path, index=False)
    return path


def asym_image(h: int = 424, w: int | None = None, seed: int = 0) -> np.ndarray:
    """Asymmetric, smooth-ish RGB test image (H, W, 3) uint8."""
    w = h if w is None else w
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                    ((xx + 2 * yy) % 256)], axis=-1).astype(np.uint8)
    img[: h // 3, : w // 5] = rng.integers(0, 256, size=(h // 3, w // 5, 3), dtype=np.uint8)
    return img
