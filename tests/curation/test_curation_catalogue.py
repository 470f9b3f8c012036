"""Format detection and reading of vote catalogues."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from curation_helpers import BIG_ID, STRIPE82, canonical_row, hart_columns, write_hart_csv

from galaxy_distillation.curation.catalogue import (
    ANSWER_COLUMNS,
    detect_format,
    parse_int64_ids,
    read_vote_catalogue,
)
from galaxy_distillation.curation.errors import (
    CatalogueFormatError,
    CatalogueNotFoundError,
    EmptyDatasetError,
    ParameterError,
)
from galaxy_distillation.curation.labels import label_galaxies


def stripe82_header() -> list[str]:
    with gzip.open(STRIPE82, "rt") as fh:
        return fh.readline().strip().split(",")


def test_detect_format_real_headers():
    assert detect_format(hart_columns()) == "hart16"
    assert detect_format(stripe82_header()) == "willett13"
    assert detect_format(["dr7objid", "gz2class", "x"]) == "willett13"


def test_detect_format_rejects_kaggle_and_garbage():
    with pytest.raises(CatalogueFormatError, match="Kaggle.*path-weighted.*dr7objid"):
        detect_format(["GalaxyID", "Class1.1", "Class1.2"])
    with pytest.raises(CatalogueFormatError, match="dr7objid.*objid"):
        detect_format(["foo", "bar"])


def test_garbage_file_lists_missing_columns(tmp_path: Path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"objid": [1], "t01_smooth_or_features_a01_smooth_fraction": [0.5]}).to_csv(
        path, index=False)
    with pytest.raises(CatalogueFormatError) as err:
        read_vote_catalogue(path)
    msg = str(err.value)
    assert "t07_rounded_a16_completely_round_fraction" in msg
    assert "t09_bulge_shape_a27_no_bulge_fraction" in msg
    assert "t01_smooth_or_features_a01_smooth_fraction" not in msg  # present, not listed
    assert "14 column(s)" in msg and "\n" not in msg


def test_read_real_stripe82():
    df, info = read_vote_catalogue(STRIPE82)
    assert info["format"] == "willett13" and info["n_rows_read"] == 19761
    assert list(df.columns) == ["dr7objid", *ANSWER_COLUMNS]
    assert df["dr7objid"].dtype == np.int64
    # ids exact against the raw text (float64 would corrupt the last digits)
    with gzip.open(STRIPE82, "rt") as fh:
        fh.readline()
        first = [int(fh.readline().split(",")[0]) for _ in range(3)]
    assert df["dr7objid"].iloc[:3].tolist() == first
    assert first[0] == BIG_ID
    labelled, stats = label_galaxies(df)
    assert set(labelled["label"].unique()) == set(range(9))
    assert 15000 < len(labelled) <= 19761
    assert 0.3 < stats["mean_confidence"] < 0.8


def test_fraction_options(tmp_path: Path):
    raw = [canonical_row(a01_smooth=1.0, a16_completely_round=1.0)]
    deb = [canonical_row(a02_features_or_disk=1.0, a04_edgeon_yes=1.0, a27_no_bulge=1.0)]
    path = tmp_path / "hart.csv.gz"
    cols = hart_columns()
    data = {c: [0.25] for c in cols}
    data["dr7objid"], data["gz2_class"] = [str(BIG_ID)], ["Ei"]
    from galaxy_distillation.curation.catalogue import ANSWERS
    for short, prefix in ANSWERS.items():
        data[f"{prefix}_fraction"] = [raw[0][short]]
        data[f"{prefix}_debiased"] = [deb[0][short]]
    pd.DataFrame(data, columns=cols).to_csv(path, index=False)
    df_raw, info_raw = read_vote_catalogue(path, "fraction")
    df_deb, info_deb = read_vote_catalogue(path, fraction="debiased")
    df_w, _ = read_vote_catalogue(path, fraction="weighted_fraction")
    assert info_raw["format"] == "hart16" and info_deb["fraction_suffix"] == "debiased"
    assert label_galaxies(df_raw)[0]["label"].item() == 0
    assert label_galaxies(df_deb)[0]["label"].item() == 4
    assert (df_w[list(ANSWER_COLUMNS)] == 0.25).all().all()
    assert df_deb["dr7objid"].item() == BIG_ID
    with pytest.raises(ValueError, match="debiased") as err:
        read_vote_catalogue(path, fraction="votes")
    assert isinstance(err.value, ParameterError)


def test_nan_nonnumeric_and_duplicates(tmp_path: Path):
    good = canonical_row(a01_smooth=1.0, a17_in_between=1.0)
    bad_text = dict(good, a06_bar="abc")
    bad_nan = dict(good, a08_spiral=float("nan"))
    rows = [good, bad_text, bad_nan, dict(good, a01_smooth=0.5), good, good]
    ids = [10, 11, 12, 10, 13, "8.6e18"]  # 10 duplicated: the first (a01 = 1.0) is kept
    path = write_hart_csv(tmp_path / "c.csv", ids, rows)
    df, info = read_vote_catalogue(path)
    assert info["n_dropped_nan"] == 2 and info["n_duplicates"] == 1
    assert info["n_dropped_bad_id"] == 1
    assert df["dr7objid"].tolist() == [10, 13]
    assert df.loc[0, "a01_smooth"] == 1.0
    assert info["n_rows_read"] == 6 and info["n_rows"] == 2


def test_parse_int64_ids_exact():
    text = pd.Series([str(BIG_ID), " 42 ", "-7", "9223372036854775808", "1.5e18", None, "x"])
    ids, ok = parse_int64_ids(text)
    assert ok.tolist() == [True, True, True, False, False, False, False]
    assert ids[ok].tolist() == [BIG_ID, 42, -7]
    ids2, ok2 = parse_int64_ids(pd.Series([str(BIG_ID), "3"]))  # fast path, no overflow
    assert ok2.all() and ids2.tolist() == [BIG_ID, 3] and ids2.dtype == np.int64


def test_empty_and_missing_files(tmp_path: Path):
    path = write_hart_csv(tmp_path / "empty.csv", [], [])
    with pytest.raises(EmptyDatasetError):
        read_vote_catalogue(path)
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(EmptyDatasetError):
        read_vote_catalogue(tmp_path / "blank.csv")
    with pytest.raises(FileNotFoundError, match="nope.csv") as err:
        read_vote_catalogue(tmp_path / "nope.csv")
    assert isinstance(err.value, CatalogueNotFoundError)
    all_nan = write_hart_csv(tmp_path / "nan.csv", [1], [dict(canonical_row(), a01_smooth="x")])
    with pytest.raises(EmptyDatasetError, match="1 with NaN"):
        read_vote_catalogue(all_nan)
