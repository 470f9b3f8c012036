"""Read a Galaxy Zoo 2 vote catalogue (Hart 2016 or Willett 2013) by column name.

The output is a *canonical* frame: ``dr7objid`` (int64) plus one float64 column
per answer needed by the 9-class tree merge (see :data:`ANSWERS`), whatever the
source format. Only those columns are read from disk (``usecols``), so the
240k-row Hart table loads in a few seconds with little memory.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import (
    CatalogueFormatError,
    CatalogueNotFoundError,
    EmptyDatasetError,
    ParameterError,
)

#: Canonical short name -> answer prefix in the GZ2 tables (append ``_<suffix>``).
#: These are the 15 answers the 9-class merge uses (REFERENCE.md section 1).
ANSWERS: dict[str, str] = {
    "a01_smooth": "t01_smooth_or_features_a01_smooth",
    "a02_features_or_disk": "t01_smooth_or_features_a02_features_or_disk",
    "a03_star_or_artifact": "t01_smooth_or_features_a03_star_or_artifact",
    "a04_edgeon_yes": "t02_edgeon_a04_yes",
    "a05_edgeon_no": "t02_edgeon_a05_no",
    "a06_bar": "t03_bar_a06_bar",
    "a07_no_bar": "t03_bar_a07_no_bar",
    "a08_spiral": "t04_spiral_a08_spiral",
    "a09_no_spiral": "t04_spiral_a09_no_spiral",
    "a16_completely_round": "t07_rounded_a16_completely_round",
    "a17_in_between": "t07_rounded_a17_in_between",
    "a18_cigar_shaped": "t07_rounded_a18_cigar_shaped",
    "a25_bulge_rounded": "t09_bulge_shape_a25_rounded",
    "a26_bulge_boxy": "t09_bulge_shape_a26_boxy",
    "a27_no_bulge": "t09_bulge_shape_a27_no_bulge",
}

#: Canonical answer column names, in tree order.
ANSWER_COLUMNS: tuple[str, ...] = tuple(ANSWERS)

#: Accepted values of ``fraction`` -> column suffix in the tables.
FRACTION_SUFFIXES: dict[str, str] = {
    "fraction": "fraction",
    "debiased": "debiased",
    "weighted_fraction": "weighted_fraction",
}

_FORMATS_HELP = (
    "accepted formats: Hart 2016 gz2_hart16 (dr7objid, gz2_class, ...) or "
    "Willett 2013 tables (objid or dr7objid, optional gz2class), each with "
    "t01_smooth_or_features_a01_smooth_<fraction>-style answer columns"
)

_INT_RE = re.compile(r"^[+-]?\d+$")


def detect_format(columns: Sequence[str]) -> str:
    """Detect the catalogue format from its header.

    Args:
        columns: column names of the table (order irrelevant, case-insensitive).

    Returns:
        ``"hart16"`` if the header has ``dr7objid`` and ``gz2_class``;
        ``"willett13"`` if it has ``objid`` or ``dr7objid`` (with ``gz2class``
        or no class string).

    Raises:
        CatalogueFormatError: Kaggle Galaxy Challenge header (``GalaxyID``,
            ``Class1.1``...: path-weighted probabilities, no dr7objid), or no id
            column at all (the message names the missing columns).
    """
    cols = {str(c).strip().lower() for c in columns}
    if "galaxyid" in cols or any(c.startswith("class1.") for c in cols):
        raise CatalogueFormatError(
            "Kaggle Galaxy Challenge table (GalaxyID, Class1.1..Class11.6) is not "
            "supported: it holds path-weighted probabilities, not per-task vote "
            "fractions, and has no dr7objid to join with the GZ2 images; "
            + _FORMATS_HELP
        )
    if "dr7objid" in cols and "gz2_class" in cols:
        return "hart16"
    if "dr7objid" in cols or "objid" in cols:
        return "willett13"
    preview = ", ".join(sorted(cols)[:5]) + (", ..." if len(cols) > 5 else "")
    raise CatalogueFormatError(
        f"unrecognised catalogue header (columns: {preview or 'none'}): missing id "
        f"column 'dr7objid' or 'objid'; " + _FORMATS_HELP
    )


def _id_column(columns: Sequence[str], fmt: str) -> str:
    """Return the actual (original-case) id column name: dr7objid preferred."""
    lower = {str(c).strip().lower(): c for c in columns}
    for name in ("dr7objid", "objid"):
        if name in lower:
            return lower[name]
    raise CatalogueFormatError(f"{fmt} catalogue has no 'dr7objid' or 'objid' column")


def parse_int64_ids(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Parse ids exactly as int64, never through float.

    Args:
        values: ids as read from a CSV (strings, or integers already).

    Returns:
        ``(ids, ok)``: ids as an int64 Series (0 where invalid) and a boolean mask
        of the rows whose id was a valid integer that fits in int64.
    """
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("int64"), np.ones(len(values), dtype=bool)
    text = values.astype("string").str.strip()
    ok = text.str.fullmatch(_INT_RE.pattern).fillna(False).to_numpy(dtype=bool)
    out = np.zeros(len(values), dtype=np.int64)
    idx = np.flatnonzero(ok)
    valid = text.to_numpy(dtype=object)[idx]
    try:  # numpy parses decimal text as integers exactly (no float step)
        out[idx] = np.asarray(valid, dtype=str).astype(np.int64)
    except OverflowError:  # some id beyond int64: check one by one
        for i, v in zip(idx, valid):
            n = int(v)
            if -(2**63) <= n < 2**63:
                out[i] = n
            else:
                ok[i] = False
    return pd.Series(out, index=values.index, name=values.name), ok


def _open_header(path: Path) -> list[str]:
    """Read only the header of a .csv / .csv.gz file."""
    try:
        return list(pd.read_csv(path, nrows=0).columns)
    except pd.errors.EmptyDataError as exc:
        raise EmptyDatasetError(f"catalogue {path} is empty (no header)") from exc
    except (EOFError, zlib.error, OSError) as exc:  # a truncated or corrupt .gz / .bz2 / .zip
        raise CatalogueFormatError(
            f"catalogue {path} is truncated or corrupt ({type(exc).__name__}: {exc}); download it again"
        ) from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise CatalogueFormatError(f"cannot read catalogue {path} as CSV: {exc}") from exc


def read_vote_catalogue(
    path: str | Path, fraction: str = "fraction"
) -> tuple[pd.DataFrame, dict]:
    """Read a GZ2 vote table into the canonical frame.

    The format is detected from the header (:func:`detect_format`); columns are
    found by name (case-insensitive), never by position, and only the id and the
    15 needed ``<answer>_<fraction>`` columns are read.

    Cleaning rules:

    - ids are parsed as int64 from their text (never via float); rows with an id
      that is not an integer are dropped and counted (``n_dropped_bad_id``);
    - rows with any non-numeric or NaN fraction are dropped and counted
      (``n_dropped_nan``);
    - duplicate ids keep their **first** occurrence in file order; the others are
      dropped and counted (``n_duplicates``).

    Args:
        path: ``.csv`` or ``.csv.gz`` file (compression inferred from the name).
        fraction: which fraction columns to use: ``"fraction"`` (raw, as the
            reference code), ``"debiased"`` (Hart 2016 recommendation) or
            ``"weighted_fraction"``.

    Returns:
        ``(frame, info)``: ``frame`` has ``dr7objid`` (int64) and one float64
        column per name in :data:`ANSWER_COLUMNS`, index 0..n-1, in file order;
        ``info`` has ``format``, ``path``, ``n_rows_read``, ``n_dropped_bad_id``,
        ``n_dropped_nan``, ``n_duplicates``, ``n_rows``, ``fraction`` (option) and
        ``fraction_suffix`` (column suffix used).

    Raises:
        ParameterError: (a ``ValueError``) ``fraction`` not an allowed value.
        CatalogueNotFoundError: (a ``FileNotFoundError``) no such file.
        CatalogueFormatError: unsupported header or missing answer columns (the
            message lists exactly the missing names).
        EmptyDatasetError: no usable row.
    """
    if fraction not in FRACTION_SUFFIXES:
        raise ParameterError(
            f"fraction={fraction!r} is not allowed; use one of {sorted(FRACTION_SUFFIXES)}"
        )
    suffix = FRACTION_SUFFIXES[fraction]
    path = Path(path)
    if not path.is_file():
        raise CatalogueNotFoundError(f"vote catalogue not found: {path}")

    header = _open_header(path)
    fmt = detect_format(header)
    id_col = _id_column(header, fmt)
    lower = {str(c).strip().lower(): c for c in header}
    wanted = {short: f"{prefix}_{suffix}" for short, prefix in ANSWERS.items()}
    missing = [col for col in wanted.values() if col not in lower]
    if missing:
        raise CatalogueFormatError(
            f"{fmt} catalogue {path.name} lacks {len(missing)} column(s) needed for "
            f"fraction={fraction!r}: {', '.join(missing)}; {_FORMATS_HELP}"
        )
    rename = {lower[col]: short for short, col in wanted.items()}
    usecols = [id_col, *rename]
    try:
        raw = pd.read_csv(
            path,
            usecols=usecols,
            dtype={id_col: str},
            low_memory=False,
            keep_default_na=True,
        )
    except (EOFError, zlib.error, OSError) as exc:  # a truncated or corrupt .gz / .bz2 / .zip
        raise CatalogueFormatError(
            f"catalogue {path} is truncated or corrupt ({type(exc).__name__}: {exc}); download it again"
        ) from None
    n_read = len(raw)
    if n_read == 0:
        raise EmptyDatasetError(f"catalogue {path} has a header but no rows")

    ids, ok_id = parse_int64_ids(raw[id_col])
    frame = pd.DataFrame({"dr7objid": ids})
    for src, short in rename.items():
        frame[short] = pd.to_numeric(raw[src], errors="coerce").astype("float64")
    frame = frame[list(["dr7objid", *ANSWER_COLUMNS])]

    ok_num = np.isfinite(frame[list(ANSWER_COLUMNS)].to_numpy()).all(axis=1)
    n_bad_id = int((~ok_id).sum())
    n_nan = int((ok_id & ~ok_num).sum())
    frame = frame[ok_id & ok_num]
    dup = frame["dr7objid"].duplicated(keep="first").to_numpy()
    n_dup = int(dup.sum())
    frame = frame[~dup].reset_index(drop=True)
    if frame.empty:
        raise EmptyDatasetError(
            f"catalogue {path} has no usable row ({n_read} read, {n_bad_id} bad ids, "
            f"{n_nan} with NaN/non-numeric fractions)"
        )
    info = {
        "format": fmt,
        "path": str(path),
        "id_column": str(id_col),
        "n_rows_read": int(n_read),
        "n_dropped_bad_id": n_bad_id,
        "n_dropped_nan": n_nan,
        "n_duplicates": n_dup,
        "n_rows": int(len(frame)),
        "fraction": fraction,
        "fraction_suffix": suffix,
    }
    return frame, info
