"""Write a mock Galaxy Zoo 2 sky in the exact real file layout.

Layout of ``out_dir``::

    gz2_hart16.csv            231 Hart 2016 columns, one row per galaxy
    gz2_filename_mapping.csv  objid,sample,asset_id (plus ~2 % rows for objects outside
                              the catalogue, without images, as in the real mapping)
    images/<asset_id>.jpg     424x424 RGB JPEGs
    mock_truth.csv            dr7objid, asset_id, true_class, clarity, key properties
    MOCK_SKY.json             marker: seed, n_galaxies, version, created_by, status

Every galaxy gets its own generators derived from ``np.random.SeedSequence([seed,
index, stream])`` (stream 0 properties, 1 votes, 2 image), so the output is identical
for any ``n_workers`` and the catalogue can be produced without rendering
(:func:`simulate_catalogue`).

Safety: a folder holding a catalogue (``*.csv`` / ``*.csv.gz``) or ``images/`` but no
``MOCK_SKY.json`` is treated as real data and never touched
(:class:`RealDataProtectedError`). The marker records the SHA-256 of every table the writer
wrote; before it overwrites a marked folder, each table there must match its recorded
checksum, so a foreign catalogue dropped into a marked folder is refused too.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from galaxy_distillation.errors import UserError
from galaxy_distillation.storage.atomic import atomic_path, write_text

from .columns import HART16_COLUMNS
from .properties import N_CLASSES, draw_properties
from .render import render_properties
from .votes import simulate_votes

MOCK_SKY_VERSION = "1.0"
MARKER_NAME = "MOCK_SKY.json"
CATALOGUE_NAME = "gz2_hart16.csv"
MAPPING_NAME = "gz2_filename_mapping.csv"
TRUTH_NAME = "mock_truth.csv"
IMAGES_DIR = "images"

#: Default class mix (mildly imbalanced like GZ2; every class >= 7 %).
DEFAULT_CLASS_FRACTIONS: tuple[float, ...] = (0.14, 0.15, 0.085, 0.10, 0.085, 0.12, 0.09, 0.13, 0.10)

TRUTH_COLUMNS: tuple[str, ...] = (
    "dr7objid",
    "asset_id",
    "true_class",
    "class_name",
    "clarity",
    "feature_strength",
    "petro_r90_arcsec",
    "psf_sigma_px",
    "snr",
    "redshift",
    "colour_tilt",
    "axis_ratio",
    "position_angle",
    "sersic_n",
    "bulge_fraction",
    "bar_fraction",
    "bar_length_px",
    "n_arms",
    "pitch_deg",
    "arm_fraction",
    "disk_thickness",
    "dust_lane",
    "n_stars",
    "n_neighbours",
    "jpeg_quality",
)


class MockSkyError(UserError, ValueError):
    """Invalid arguments for the mock sky writer."""


class RealDataProtectedError(UserError, RuntimeError):
    """The output folder holds data that was not written by the mock sky writer."""


def _galaxy_rngs(seed: int, index: int) -> tuple[np.random.Generator, ...]:
    """Three independent generators (properties, votes, image) for galaxy ``index``."""
    return tuple(np.random.default_rng(np.random.SeedSequence([seed, index, k])) for k in range(3))


def _class_counts(n: int, fractions: Sequence[float]) -> np.ndarray:
    """Largest-remainder rounding of n * fractions to integers summing to n."""
    f = np.asarray(fractions, dtype=np.float64) / float(np.sum(fractions))
    raw = f * n
    counts = np.floor(raw).astype(int)
    rest = n - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return counts


def _check_args(n_galaxies: int, seed: int, class_fractions: Sequence[float] | None, jpeg_quality: tuple[int, int]) -> tuple[float, ...]:
    if isinstance(n_galaxies, bool) or not isinstance(n_galaxies, (int, np.integer)) or n_galaxies < 1:
        raise MockSkyError(f"n_galaxies must be a positive int, got {n_galaxies!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MockSkyError(f"seed must be a non-negative int, got {seed!r}")
    fr = tuple(float(x) for x in (DEFAULT_CLASS_FRACTIONS if class_fractions is None else class_fractions))
    if len(fr) != N_CLASSES or any(not math.isfinite(x) or x < 0 for x in fr) or sum(fr) <= 0:
        raise MockSkyError(f"class_fractions must be 9 non-negative numbers with a positive sum, got {fr}")
    lo, hi = jpeg_quality
    if not 1 <= lo <= hi <= 100:
        raise MockSkyError(f"jpeg_quality must be (lo, hi) with 1 <= lo <= hi <= 100, got {jpeg_quality}")
    return fr


def plan_sky(n_galaxies: int, seed: int, class_fractions: Sequence[float] | None = None) -> pd.DataFrame:
    """Assign ids and classes: one row per galaxy (index, dr7objid, asset_id, true_class, ra, dec).

    Class counts are exact (largest remainder); the order is shuffled with the seed.
    ``dr7objid`` are unique 19-digit int64 ids, ``asset_id`` unique ints.
    """
    fr = _check_args(n_galaxies, seed, class_fractions, (75, 90))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31 - 1]))
    counts = _class_counts(n_galaxies, fr)
    classes = rng.permutation(np.repeat(np.arange(N_CLASSES), counts))
    base = 8_647_474_690_000_000_000
    offsets = rng.choice(10**12, size=n_galaxies, replace=False)
    asset = rng.choice(np.arange(3, 3 + max(4 * n_galaxies, 1000)), size=n_galaxies, replace=False)
    ra = rng.uniform(110.0, 260.0, n_galaxies)
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-5.0)), np.sin(np.radians(65.0)), n_galaxies)))
    return pd.DataFrame(
        {
            "index": np.arange(n_galaxies),
            "dr7objid": (base + offsets).astype(np.int64),
            "asset_id": asset.astype(np.int64),
            "true_class": classes.astype(int),
            "ra": ra,
            "dec": dec,
        }
    )


def _ra_string(ra: float) -> str:
    h = ra / 15.0
    hh, rem = int(h), (h - int(h)) * 60
    mm, ss = int(rem), (rem - int(rem)) * 60
    return f"{hh:02d}:{mm:02d}:{ss:05.2f}"


def _dec_string(dec: float) -> str:
    sign = "-" if dec < 0 else "+"
    d = abs(dec)
    dd, rem = int(d), (d - int(d)) * 60
    mm, ss = int(rem), (rem - int(rem)) * 60
    return f"{sign}{dd:02d}:{mm:02d}:{ss:04.1f}"


def _galaxy_record(seed: int, index: int, true_class: int) -> tuple[dict[str, Any], dict[str, Any], np.random.Generator]:
    """Properties and votes of one galaxy (no image); returns (props, votes, image rng)."""
    r_props, r_votes, r_img = _galaxy_rngs(seed, index)
    props = draw_properties(true_class, r_props)
    n_vol = int(np.clip(round(r_votes.normal(46.0, 7.0)), 25, 80))
    votes = simulate_votes(true_class, props["clarity"], r_votes, n_vol, properties=props)
    return props, votes, r_img


def simulate_catalogue(n_galaxies: int, seed: int, class_fractions: Sequence[float] | None = None) -> pd.DataFrame:
    """The Hart 2016 catalogue (plus ``true_class``, ``clarity``) the writer would write, without images.

    Fast (a few ms per galaxy): for checks on vote statistics.
    """
    plan = plan_sky(n_galaxies, seed, class_fractions)
    rows = []
    for idx, cls in zip(plan["index"], plan["true_class"]):
        props, votes, _ = _galaxy_record(seed, int(idx), int(cls))
        rows.append({**votes, "clarity": props["clarity"]})
    votes_df = pd.DataFrame(rows)
    return _catalogue_frame(plan, votes_df).assign(true_class=plan["true_class"].to_numpy(), clarity=votes_df["clarity"].to_numpy())


def _catalogue_frame(plan: pd.DataFrame, votes: pd.DataFrame) -> pd.DataFrame:
    """Assemble the 231-column catalogue from the plan and the per-galaxy votes."""
    cat = votes.copy()
    cat["dr7objid"] = plan["dr7objid"].to_numpy()
    cat["ra"] = plan["ra"].round(6).to_numpy()
    cat["dec"] = plan["dec"].round(6).to_numpy()
    cat["rastring"] = [_ra_string(x) for x in plan["ra"]]
    cat["decstring"] = [_dec_string(x) for x in plan["dec"]]
    cat["sample"] = "original"
    return cat[HART16_COLUMNS]


def _render_one(args: tuple[int, int, int, str, tuple[int, int]]) -> dict[str, Any]:
    """Worker: render galaxy ``index``, write its JPEG, return votes + truth row."""
    seed, index, true_class, path, jpeg_quality = args
    props, votes, r_img = _galaxy_record(seed, index, true_class)
    image, props = render_properties(props, r_img)
    quality = int(r_img.integers(jpeg_quality[0], jpeg_quality[1] + 1))
    Image.fromarray(image, mode="RGB").save(path, format="JPEG", quality=quality)
    props["jpeg_quality"] = quality
    return {"votes": votes, "props": props}


def _paths(out: Path) -> dict[str, Path]:
    return {
        "catalogue": out / CATALOGUE_NAME,
        "mapping": out / MAPPING_NAME,
        "images": out / IMAGES_DIR,
        "truth": out / TRUTH_NAME,
        "marker": out / MARKER_NAME,
    }


def _guard(out: Path) -> dict[str, Any] | None:
    """Refuse folders that look like real data; return the existing marker (or None)."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise MockSkyError(f"out_dir exists and is not a folder: {out}")
    marker = out / MARKER_NAME
    if not marker.exists():
        catalogues = [p.name for p in out.iterdir() if p.name.endswith((".csv", ".csv.gz"))]
        if catalogues or (out / IMAGES_DIR).exists():
            found = ", ".join(sorted(catalogues) + ([IMAGES_DIR + "/"] if (out / IMAGES_DIR).exists() else []))
            raise RealDataProtectedError(
                f"refusing to write a mock sky into {out}: it holds {found} but no {MARKER_NAME} marker (real data?)"
            )
        return None
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MockSkyError(f"unreadable mock-sky marker {marker}: {exc}") from None


def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_owned(out: Path, marker: dict[str, Any]) -> None:
    """Refuse to overwrite a marked folder unless every table in it is one the writer wrote
    (its checksum is recorded in the marker)."""
    recorded = marker.get("sha256") or {}
    tables = sorted(p for p in out.iterdir() if p.is_file() and p.name.endswith((".csv", ".csv.gz")))
    for table in tables:
        if recorded.get(table.name) != sha256_of(table):
            why = "differs from" if table.name in recorded else "is not recorded in"
            raise RealDataProtectedError(
                f"refusing to overwrite {table}: its checksum {why} the mock sky's marker {out / MARKER_NAME} "
                f"(a foreign catalogue?); move it out of {out} or delete the folder to render a new mock sky"
            )


def _complete(out: Path, marker: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """True when the marker matches ``wanted`` and all files are present."""
    if marker.get("status") != "complete":
        return False
    if any(marker.get(k) != v for k, v in wanted.items()):
        return False
    p = _paths(out)
    if not all(p[k].exists() for k in ("catalogue", "mapping", "truth")):
        return False
    n_images = sum(1 for _ in p["images"].glob("*.jpg")) if p["images"].is_dir() else 0
    return n_images == marker.get("n_galaxies")


def _summary(out: Path, marker: dict[str, Any], seconds: float, skipped: bool) -> dict[str, Any]:
    n = int(marker["n_galaxies"])
    return {
        "n_galaxies": n,
        "class_counts": {int(k): int(v) for k, v in marker["class_counts"].items()},
        "seconds": seconds,
        "images_per_second": (n / seconds) if (seconds > 0 and not skipped) else None,
        "skipped": skipped,
        "paths": {k: str(v) for k, v in _paths(out).items()},
    }


def _write_table(frame: pd.DataFrame, path: Path, marker_path: Path, marker: dict[str, Any]) -> None:
    """Write one CSV atomically and record its checksum in the marker at once."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    marker["sha256"][path.name] = sha256_of(path)
    write_text(marker_path, json.dumps(marker, indent=2))


def sky_spec(n_galaxies: int, seed: int, class_fractions: Sequence[float] | None = None,
             jpeg_quality: tuple[int, int] = (75, 90), n_workers: int = 1) -> dict[str, Any]:
    """The marker fields a mock sky made with these arguments has (checked: :class:`MockSkyError`)."""
    fr = _check_args(n_galaxies, seed, class_fractions, jpeg_quality)
    if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise MockSkyError(f"n_workers must be a positive int, got {n_workers!r}")
    return {
        "seed": int(seed),
        "n_galaxies": int(n_galaxies),
        "version": MOCK_SKY_VERSION,
        "class_fractions": list(fr),
        "jpeg_quality": list(jpeg_quality),
    }


def write_mock_sky(
    out_dir: str | Path,
    n_galaxies: int,
    seed: int,
    class_fractions: Sequence[float] | None = None,
    jpeg_quality: tuple[int, int] = (75, 90),
    n_workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Render a mock GZ2 sky into ``out_dir`` in the real file layout.

    Args:
        out_dir: target folder (created if missing).
        n_galaxies: number of galaxies (exact per-class counts from the fractions).
        seed: master seed; output is byte-identical for a seed, whatever n_workers.
        class_fractions: 9 relative class weights; :data:`DEFAULT_CLASS_FRACTIONS` if None.
        jpeg_quality: inclusive range the per-image JPEG quality is drawn from.
        n_workers: >1 renders in a spawn-context process pool.
        progress: show a tqdm bar over galaxies.
        overwrite: re-render even if an identical complete mock sky is present (never
            overrides the real-data protection).

    Returns:
        Summary dict: n_galaxies, class_counts, seconds, images_per_second, skipped, paths.

    Raises:
        RealDataProtectedError: out_dir holds a catalogue or images/ without marker.
        MockSkyError: invalid arguments.
    """
    wanted = sky_spec(n_galaxies, seed, class_fractions, jpeg_quality, n_workers)
    fr = tuple(wanted["class_fractions"])
    out = Path(out_dir)
    t0 = time.perf_counter()
    old = _guard(out)
    if old is not None and not overwrite and _complete(out, old, wanted):
        return _summary(out, old, time.perf_counter() - t0, skipped=True)

    if old is not None:
        _check_owned(out, old)
    paths = _paths(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_sky(n_galaxies, seed, fr)
    counts = {int(c): int((plan["true_class"] == c).sum()) for c in range(N_CLASSES)}
    marker = {
        **wanted,
        "created_by": "galaxy_distillation.sky.write_mock_sky",
        "status": "in_progress",
        "class_counts": counts,
        "note": "synthetic Galaxy Zoo 2 mock sky (not real data)",
        "sha256": {},
    }
    write_text(paths["marker"], json.dumps(marker, indent=2))
    for name in (CATALOGUE_NAME, MAPPING_NAME, TRUTH_NAME):  # old tables, proven ours above
        (out / name).unlink(missing_ok=True)
    if paths["images"].is_dir():
        for f in paths["images"].glob("*.jpg"):
            f.unlink()
    paths["images"].mkdir(exist_ok=True)

    jobs = [
        (int(seed), int(i), int(c), str(paths["images"] / f"{a}.jpg"), tuple(jpeg_quality))
        for i, c, a in zip(plan["index"], plan["true_class"], plan["asset_id"])
    ]
    bar = dict(total=len(jobs), desc="mock sky", unit="gal", disable=not progress)
    if n_workers > 1:
        with ProcessPoolExecutor(max_workers=int(n_workers), mp_context=mp.get_context("spawn")) as pool:
            results = list(tqdm(pool.map(_render_one, jobs, chunksize=8), **bar))
    else:
        results = [_render_one(j) for j in tqdm(jobs, **bar)]

    catalogue = _catalogue_frame(plan, pd.DataFrame([r["votes"] for r in results]))
    _write_table(catalogue, paths["catalogue"], paths["marker"], marker)

    # mapping: every catalogue galaxy plus ~2 % objects outside it (no image), like Zenodo 3565489
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31 - 2]))
    n_extra = n_galaxies // 50
    used_assets = set(plan["asset_id"].tolist())
    extra_assets = [a for a in rng.permutation(np.arange(3, 3 + 5 * n_galaxies + 1000)) if a not in used_assets][:n_extra]
    extra_ids = 8_647_474_700_000_000_000 + rng.choice(10**12, size=n_extra, replace=False)
    mapping = pd.concat(
        [
            pd.DataFrame({"objid": plan["dr7objid"], "sample": "original", "asset_id": plan["asset_id"]}),
            pd.DataFrame({"objid": extra_ids.astype(np.int64), "sample": "extra", "asset_id": np.asarray(extra_assets, dtype=np.int64)}),
        ],
        ignore_index=True,
    ).sort_values("asset_id", kind="stable")
    _write_table(mapping, paths["mapping"], paths["marker"], marker)

    truth = pd.DataFrame([r["props"] for r in results])
    truth["dr7objid"] = plan["dr7objid"].to_numpy()
    truth["asset_id"] = plan["asset_id"].to_numpy()
    _write_table(truth[list(TRUTH_COLUMNS)], paths["truth"], paths["marker"], marker)

    seconds = time.perf_counter() - t0
    marker.update(status="complete", seconds=round(seconds, 3))
    write_text(paths["marker"], json.dumps(marker, indent=2))
    return _summary(out, marker, seconds, skipped=False)
