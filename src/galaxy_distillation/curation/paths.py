"""Find the GZ2 cutouts: read and clean the filename mapping (objid -> asset_id, tolerant of
bad rows), and resolve the selected galaxies to image files, with a missing-image threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .catalogue import parse_int64_ids
from .errors import (
    CatalogueFormatError,
    CatalogueNotFoundError,
    EmptyDatasetError,
    MissingImagesError,
    ParameterError,
)


def read_filename_mapping(path: str | Path) -> pd.DataFrame:
    """Read the Zenodo ``gz2_filename_mapping.csv`` (``objid,sample,asset_id``).

    Args:
        path: CSV (or .csv.gz) file.

    Returns:
        Frame with ``objid`` and ``asset_id`` (both int64, parsed exactly, never
        via float), in file order. Rows with a non-integer id are dropped.

    Raises:
        CatalogueNotFoundError: no such file.
        CatalogueFormatError: ``objid`` or ``asset_id`` column missing.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogueNotFoundError(f"filename mapping not found: {path}")
    header = [str(c).strip().lower() for c in pd.read_csv(path, nrows=0).columns]
    missing = [c for c in ("objid", "asset_id") if c not in header]
    if missing:
        raise CatalogueFormatError(
            f"filename mapping {path.name} lacks column(s) {', '.join(missing)} "
            f"(expected objid,sample,asset_id)"
        )
    raw = pd.read_csv(path, dtype=str)
    mapping, _ = clean_filename_mapping(raw)
    return mapping


def clean_filename_mapping(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Parse a filename mapping read as text: keep the rows whose ``objid`` and ``asset_id``
    are integers (int64, parsed exactly), drop and count the others.

    Returns:
        ``(mapping, report)``: ``objid``/``asset_id`` int64 in file order, and
        ``{"n_rows_read", "n_dropped_bad_id", "n_rows", "bad_rows_sample"}``.

    Raises:
        CatalogueFormatError: ``objid`` or ``asset_id`` column missing.
        EmptyDatasetError: no usable row.
    """
    raw = raw.rename(columns={c: str(c).strip().lower() for c in raw.columns})
    missing = [c for c in ("objid", "asset_id") if c not in raw.columns]
    if missing:
        raise CatalogueFormatError(
            f"filename mapping lacks column(s) {', '.join(missing)} (expected objid,sample,asset_id)"
        )
    objid, ok1 = parse_int64_ids(raw["objid"])
    asset, ok2 = parse_int64_ids(raw["asset_id"])
    ok = ok1 & ok2
    bad = np.flatnonzero(~ok)
    report = {
        "n_rows_read": int(len(raw)),
        "n_dropped_bad_id": int(bad.size),
        "n_rows": int(ok.sum()),
        "bad_rows_sample": [int(i) + 2 for i in bad[:10]],  # file line numbers (header is line 1)
    }
    if len(raw) and not ok.any():
        raise EmptyDatasetError(f"filename mapping has no usable row ({len(raw)} rows, none with integer ids)")
    mapping = pd.DataFrame({"objid": objid[ok], "asset_id": asset[ok]}).reset_index(drop=True)
    return mapping, report


def resolve_image_paths(
    selection: pd.DataFrame,
    mapping: pd.DataFrame,
    image_dir: str | Path,
    max_missing_fraction: float,
    shown_as: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Attach an existing image path to every selected galaxy.

    Joins ``selection.dr7objid == mapping.objid``; the path is
    ``image_dir/<asset_id>.jpg``. If an objid maps to several assets, the first
    one (mapping order) whose file exists is used. Galaxies with no mapping row
    or no existing file are dropped and counted.

    Args:
        selection: frame with ``dr7objid`` (other columns are kept, row order kept).
        mapping: output of :func:`read_filename_mapping`.
        image_dir: folder holding ``<asset_id>.jpg``.
        max_missing_fraction: largest tolerated fraction of dropped galaxies, 0..1.
        shown_as: the folder's name in the report and messages (default ``image_dir``; the
            URL of a remote folder whose local mirror ``image_dir`` is).

    Returns:
        ``(resolved, report)``: ``selection`` rows that have an image, plus
        ``asset_id`` (int64) and ``path`` (str); ``report`` has ``n_selected``,
        ``n_resolved``, ``n_no_mapping``, ``n_no_file``, ``missing_fraction``,
        ``image_dir`` and up to 20 ``missing_ids_sample``.

    Raises:
        ParameterError: ``max_missing_fraction`` outside 0..1.
        CatalogueFormatError: missing ``dr7objid`` / ``objid`` / ``asset_id``.
        MissingImagesError: missing fraction above the threshold (or folder absent
            while something is selected).
    """
    if not 0.0 <= float(max_missing_fraction) <= 1.0:
        raise ParameterError(f"max_missing_fraction must be in [0, 1], got {max_missing_fraction}")
    if "dr7objid" not in selection.columns:
        raise CatalogueFormatError("selection lacks the 'dr7objid' column")
    missing_cols = [c for c in ("objid", "asset_id") if c not in mapping.columns]
    if missing_cols:
        raise CatalogueFormatError(f"mapping lacks column(s): {', '.join(missing_cols)}")
    image_dir = Path(image_dir)
    n_sel = len(selection)
    ids = selection["dr7objid"].to_numpy(dtype=np.int64)
    wanted = set(ids.tolist())
    sub = mapping[mapping["objid"].isin(wanted)]
    candidates: dict[int, list[int]] = {}
    for objid, asset in zip(sub["objid"].to_numpy(np.int64), sub["asset_id"].to_numpy(np.int64)):
        candidates.setdefault(int(objid), []).append(int(asset))

    assets = np.full(n_sel, -1, dtype=np.int64)
    paths: list[str | None] = [None] * n_sel
    n_no_map = n_no_file = 0
    missing_ids: list[int] = []
    for i, objid in enumerate(ids.tolist()):
        cands = candidates.get(objid)
        if not cands:
            n_no_map += 1
            missing_ids.append(objid)
            continue
        for asset in cands:
            p = image_dir / f"{asset}.jpg"
            if p.is_file():
                assets[i], paths[i] = asset, str(p)
                break
        else:
            n_no_file += 1
            missing_ids.append(objid)

    keep = assets >= 0
    resolved = selection[keep].copy()
    resolved["asset_id"] = assets[keep]
    resolved["path"] = [p for p in paths if p is not None]
    resolved = resolved.reset_index(drop=True)
    n_missing = n_no_map + n_no_file
    frac = n_missing / n_sel if n_sel else 0.0
    report = {
        "n_selected": int(n_sel),
        "n_resolved": int(keep.sum()),
        "n_no_mapping": int(n_no_map),
        "n_no_file": int(n_no_file),
        "missing_fraction": float(frac),
        "image_dir": shown_as or str(image_dir),
        "missing_ids_sample": missing_ids[:20],
    }
    if frac > max_missing_fraction:
        where = "" if image_dir.is_dir() else " (folder does not exist)"
        raise MissingImagesError(
            f"{n_missing} of {n_sel} selected galaxies have no image ({n_no_map} without "
            f"mapping, {n_no_file} without file in {shown_as or image_dir}{where}): fraction "
            f"{frac:.3f} > max_missing_fraction={max_missing_fraction}"
        )
    return resolved, report
