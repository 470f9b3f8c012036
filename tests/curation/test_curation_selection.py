"""Top-K selection and seeded per-class split."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from galaxy_distillation.curation.errors import ParameterError, ShortfallError
from galaxy_distillation.curation.selection import select_and_split


def labelled_frame(per_class: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 9 * per_class
    return pd.DataFrame({
        "dr7objid": rng.permutation(n).astype(np.int64) * 7 + 10**18,
        "label": np.repeat(np.arange(9), per_class).astype(np.int64),
        "confidence": rng.uniform(0.1, 1.0, n).round(2),  # rounding makes ties
    })


def test_top_k_and_split_sizes():
    df = labelled_frame()
    train, test, rep = select_and_split(df, k_per_class=6, n_train_per_class=4, seed=1)
    assert list(train.columns) == ["dr7objid", "label", "confidence", "split"]
    assert rep["counts_train"] == [4] * 9 and rep["counts_test"] == [2] * 9
    assert (train["split"] == "train").all() and (test["split"] == "test").all()
    assert not set(train["dr7objid"]) & set(test["dr7objid"])
    for c in range(9):
        grp = df[df["label"] == c].sort_values(["confidence", "dr7objid"],
                                               ascending=[False, True])
        expected = set(grp["dr7objid"].iloc[:6])
        got = set(train.loc[train.label == c, "dr7objid"]) | set(test.loc[test.label == c, "dr7objid"])
        assert got == expected
    assert rep["mean_confidence_selected"] > rep["mean_confidence_all"]
    assert rep["shortfalls"] == {}


def test_ties_broken_by_id():
    df = pd.DataFrame({"dr7objid": np.array([5, 3, 9, 1], dtype=np.int64),
                       "label": np.zeros(4, dtype=np.int64),
                       "confidence": [0.5, 0.5, 0.9, 0.5]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes 1..8 are empty
        train, test, _ = select_and_split(df, 2, 2, seed=0)
    assert set(train["dr7objid"]) == {9, 1}


def test_deterministic_and_independent_of_row_order():
    df = labelled_frame()
    a = select_and_split(df, 10, 7, seed=3)
    b = select_and_split(df.sample(frac=1.0, random_state=5), 10, 7, seed=3)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    c = select_and_split(df, 10, 7, seed=4)
    assert set(a[0]["dr7objid"]) != set(c[0]["dr7objid"])  # same top-K, other split
    assert set(a[0]["dr7objid"]) | set(a[1]["dr7objid"]) == set(c[0]["dr7objid"]) | set(c[1]["dr7objid"])


def test_shortfall_take_and_error():
    df = labelled_frame()
    df = df[~((df["label"] == 4) & (df.index % 20 >= 5))]  # class 4 keeps 5 galaxies
    with pytest.warns(UserWarning, match="edge-on disk, no bulge: 5"):
        train, test, rep = select_and_split(df, 10, 8, seed=0)
    assert rep["counts_train"][4] == 4 and rep["counts_test"][4] == 1  # round(5 * 8 / 10)
    assert rep["counts_train"][0] == 8
    assert rep["shortfalls"] == {"edge-on disk, no bulge": 5}
    with pytest.raises(ShortfallError, match="edge-on disk, no bulge: 5"):
        select_and_split(df, 10, 8, seed=0, on_shortfall="error")


def test_bad_parameters():
    df = labelled_frame()
    with pytest.raises(ParameterError, match="on_shortfall"):
        select_and_split(df, 10, 8, seed=0, on_shortfall="skip")
    with pytest.raises(ParameterError, match="n_train_per_class"):
        select_and_split(df, 10, 11, seed=0)
    with pytest.raises(ParameterError, match="k_per_class"):
        select_and_split(df, 0, 0, seed=0)
