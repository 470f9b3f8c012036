"""Mock sky writer: layout, determinism, workers, safety, idempotence."""

import json
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from galaxy_distillation.sky.columns import HART16_COLUMNS
from galaxy_distillation.sky.writer import RealDataProtectedError, simulate_catalogue, write_mock_sky

N = 12


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    out = tmp_path_factory.mktemp("sky") / "mock"
    summary = write_mock_sky(out, N, seed=5, progress=False)
    return out, summary


def test_layout_and_formats(sky):
    out, summary = sky
    assert summary["n_galaxies"] == N and sum(summary["class_counts"].values()) == N
    cat = pd.read_csv(out / "gz2_hart16.csv")
    assert list(cat.columns) == HART16_COLUMNS
    assert (out / "gz2_hart16.csv").read_text().splitlines()[0] == ",".join(HART16_COLUMNS)
    assert cat["dr7objid"].dtype == np.int64 and cat["dr7objid"].is_unique
    assert cat["dr7objid"].astype(str).str.len().eq(19).all()
    assert (cat["sample"] == "original").all()
    assert cat["gz2_class"].str.match(r"^(A|E[ric]|Se[rbn]|SB?[dcba]([1234+?][tml])?)(\([a-z]\))?$").all()
    mapping = pd.read_csv(out / "gz2_filename_mapping.csv")
    assert list(mapping.columns) == ["objid", "sample", "asset_id"]
    assert mapping["objid"].dtype == np.int64 and mapping["asset_id"].dtype == np.int64
    joined = cat.merge(mapping, left_on="dr7objid", right_on="objid", how="left")
    assert joined["asset_id"].notna().all() and len(joined) == N
    files = sorted((out / "images").glob("*.jpg"))
    assert len(files) == N
    assert {f"{a}.jpg" for a in joined["asset_id"]} == {f.name for f in files}
    with Image.open(files[0]) as im:
        assert im.format == "JPEG" and im.size == (424, 424) and im.mode == "RGB"
    truth = pd.read_csv(out / "mock_truth.csv")
    assert set(truth["dr7objid"]) == set(cat["dr7objid"])
    assert truth["clarity"].between(0, 1).all()
    marker = json.loads((out / "MOCK_SKY.json").read_text())
    assert marker["seed"] == 5 and marker["n_galaxies"] == N and marker["status"] == "complete"


def test_catalogue_matches_votes_only_simulation(sky):
    out, _ = sky
    cat = pd.read_csv(out / "gz2_hart16.csv")
    sim = simulate_catalogue(N, seed=5)
    pd.testing.assert_frame_equal(cat, sim[HART16_COLUMNS].reset_index(drop=True), check_dtype=False)


def test_idempotent_rerun_is_fast(sky):
    out, _ = sky
    before = (out / "gz2_hart16.csv").stat().st_mtime_ns
    t = time.perf_counter()
    summary = write_mock_sky(out, N, seed=5, progress=False)
    assert summary["skipped"] and time.perf_counter() - t < 1.0
    assert (out / "gz2_hart16.csv").stat().st_mtime_ns == before


def test_deterministic_and_workers(sky, tmp_path):
    out, _ = sky
    a = write_mock_sky(tmp_path / "a", N, seed=5, n_workers=2, progress=False)
    assert not a["skipped"]
    for name in ("gz2_hart16.csv", "gz2_filename_mapping.csv", "mock_truth.csv"):
        assert (out / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    for f in (out / "images").glob("*.jpg"):
        assert f.read_bytes() == (tmp_path / "a" / "images" / f.name).read_bytes()
    write_mock_sky(tmp_path / "b", N, seed=6, progress=False)
    assert (out / "gz2_hart16.csv").read_bytes() != (tmp_path / "b" / "gz2_hart16.csv").read_bytes()


def test_refuses_real_data(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "gz2_hart16.csv.gz").write_bytes(b"not ours")
    with pytest.raises(RealDataProtectedError, match="real"):
        write_mock_sky(real, 3, seed=0, progress=False, overwrite=True)
    assert (real / "gz2_hart16.csv.gz").read_bytes() == b"not ours"
    imgs = tmp_path / "imgs"
    (imgs / "images").mkdir(parents=True)
    with pytest.raises(RealDataProtectedError):
        write_mock_sky(imgs, 3, seed=0, progress=False)


def _labels(cat: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """9-class tree merge (REFERENCE.md section 1) on the raw fractions."""
    f = lambda a: cat[f"{a}_fraction"].to_numpy(float)  # noqa: E731
    sm, ft = f("t01_smooth_or_features_a01_smooth"), f("t01_smooth_or_features_a02_features_or_disk")
    eo, ne = ft * f("t02_edgeon_a04_yes"), ft * f("t02_edgeon_a05_no")
    bar, nob = ne * f("t03_bar_a06_bar"), ne * f("t03_bar_a07_no_bar")
    sp, nsp = f("t04_spiral_a08_spiral"), f("t04_spiral_a09_no_spiral")
    scores = np.stack(
        [
            sm * f("t07_rounded_a16_completely_round"),
            sm * f("t07_rounded_a17_in_between"),
            sm * f("t07_rounded_a18_cigar_shaped"),
            eo * (f("t09_bulge_shape_a25_rounded") + f("t09_bulge_shape_a26_boxy")),
            eo * f("t09_bulge_shape_a27_no_bulge"),
            bar * sp,
            bar * nsp,
            nob * sp,
            nob * nsp,
            f("t01_smooth_or_features_a03_star_or_artifact"),
        ],
        axis=1,
    )
    return scores.argmax(1), scores.max(1)


def test_default_mix_gives_top120_per_class():
    cat = simulate_catalogue(1800, seed=0)
    label, conf = _labels(cat)
    counts = np.bincount(label, minlength=10)
    assert (counts[:9] >= 120).all(), counts
    assert 0.85 < (label == cat["true_class"].to_numpy()).mean() < 0.995  # real confusion, not trivial
    # confidence tracks clarity: the top-120 per class are clearer than the rest
    top = np.zeros(len(cat), bool)
    for k in range(9):
        idx = np.flatnonzero(label == k)
        top[idx[np.argsort(-conf[idx])[:120]]] = True
    assert cat["clarity"][top].mean() > cat["clarity"][~top].mean() + 0.1
