"""Statistics and claims: uniform percentiles for a real galaxy, claim verdicts that follow the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kstest

from _galaxies import config, curated_set, params
from galaxy_distillation.insight import analyse, claims, stats
from galaxy_distillation.insight.measure import DIAGNOSTICS

CLASSES = (0, 1, 2, 5, 7)


@pytest.fixture(scope="module")
def measured():
    """Reals: 14 rendered galaxies per class; 'prototypes': 6 more per class, never seen by the reals."""
    cfg = config(statmorph=False, stability=False)
    real_x, real_y = curated_set(14, 32, seed=1, classes=CLASSES)
    new_x, new_y = curated_set(6, 32, seed=2, classes=CLASSES)
    sigma, sky = analyse.reference_sky(real_x / 255.0, cfg)
    reals = analyse.measure_many(real_x / 255.0, sigma, cfg, sky_ref=sky)
    reals.insert(0, "class", real_y)
    fresh = analyse.measure_many(new_x / 255.0, sigma, cfg, sky_ref=sky)
    fresh.insert(0, "class", new_y)
    fresh.insert(1, "prototype", np.tile(np.arange(6), len(CLASSES)))
    return reals, fresh


def test_stats_basics():
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    assert stats.percentile(2.0, ref) == pytest.approx(0.375)  # mid-rank: (1 + 0.5) / 4
    assert np.isnan(stats.percentile(np.nan, ref)) and np.isnan(stats.robust_z(1.0, np.ones(5)))
    a = stats.bootstrap_intervals(2.5, ref, 200, np.random.default_rng(3))
    assert a == stats.bootstrap_intervals(2.5, ref, 200, np.random.default_rng(3))  # seeded
    assert a[0] <= 0.5 <= a[1]
    q = stats.benjamini_hochberg(np.array([0.01, 0.04, 0.03, np.nan, 0.5]))
    assert np.allclose(q[[0, 1, 2, 4]], [0.04, 0.16 / 3, 0.16 / 3, 0.5]) and np.isnan(q[3])
    assert stats.mann_whitney_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert stats.mann_whitney_auc(np.array([1.0]), np.array([1.0])) == 0.5
    image = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)
    assert len({v.tobytes() for v in stats.transforms(image)}) == 8


def test_a_real_galaxy_standing_in_for_the_prototype_gets_uniform_percentiles(measured):
    reals, fresh = measured
    table = analyse.diagnostics_table(fresh, reals, [str(k) for k in range(9)], 50, 0, 0.1,
                                      diagnostics=("colour", "blue_fraction", "half_light_radius", "fourier_m2"))
    for d, group in table.groupby("diagnostic"):
        pct = group["percentile"].dropna().to_numpy()
        assert len(pct) >= 25, d
        assert kstest(pct, "uniform").pvalue > 0.001, d
    # 30 galaxies x 4 diagnostics drawn like the reals: no multiplicity-corrected finding
    assert table["finding"].sum() <= 2


def _verdict(claim_id: str, table: pd.DataFrame) -> str:
    claim = next(c for c in params().claims if c.id == claim_id).model_dump()
    return claims.evaluate_claim(claim, table, 32)["verdict"]


def test_swapping_two_classes_prototypes_flips_the_blue_spiral_verdict(measured):
    reals, fresh = measured
    protos = fresh[fresh["prototype"] == 0].reset_index(drop=True)
    names = [str(k) for k in range(9)]
    table = analyse.diagnostics_table(protos, reals, names, 50, 0, 0.1)
    assert _verdict("bluer_spirals", table) in ("supported", "exaggerated")
    swapped = protos.copy()
    swapped["class"] = swapped["class"].replace({5: 0, 0: 5, 7: 1, 1: 7})
    table = analyse.diagnostics_table(swapped, reals, names, 50, 0, 0.1)
    assert _verdict("bluer_spirals", table) == "not supported"


def test_claim_verdicts_not_measurable_and_closer():
    rows = [{"class": k, "prototype": 0, "diagnostic": "bar_strength", "value": np.nan, "percentile": np.nan,
             "real_median": np.nan, "reason": "not measurable at 32 px"} for k in (5, 6, 7, 8)]
    table = pd.DataFrame(rows)
    bar = next(c for c in params().claims if c.id == "smooth_core_no_bar").model_dump()
    out = claims.evaluate_claim(bar, table, 32)
    assert out["verdict"] == "not measurable" and "96 px" in out["evidence"]
    out = claims.evaluate_claim({**bar, "min_size": 0}, table, 32)
    assert out["verdict"] == "not measurable" and "32 px" in out["evidence"]
    closer = next(c for c in params().claims if c.kind == "closer").model_dump()
    here = {"variant": "a", "dataset": "gz2", "method": "stm", "init": "real", "augmented": False, "ipc": 1,
            "envelope_share": 0.6}
    assert claims.evaluate_claim(closer, table, 32, here)["verdict"] == "not measurable"
    other = {**here, "variant": "b", "ipc": 10, "envelope_share": 0.8}
    assert claims.evaluate_claim(closer, table, 32, here, [other])["verdict"] == "supported"
    assert claims.evaluate_claim(closer, table, 32, here, [{**other, "envelope_share": 0.5}])["verdict"] == "not supported"
    assert claims.evaluate_claim(closer, table, 32, here, [{**other, "method": "mtt"}])["verdict"] == "not measurable"


def test_every_diagnostic_is_known_to_the_claims_schema():
    from galaxy_distillation.errors import ParameterError
    from galaxy_distillation.params import validate_parameters

    assert {c.diagnostic for c in params().claims} <= set(DIAGNOSTICS)
    with pytest.raises(ParameterError, match="insight.claims.0.diagnostic"):
        validate_parameters({"insight": {"claims": [{"id": "x", "kind": "compare", "diagnostic": "colur"}]}})


def test_measuring_in_worker_processes_gives_the_same_table():
    cfg = config(statmorph=False)
    x, _ = curated_set(2, 32, seed=4, classes=(0, 3, 5, 6, 7, 8))
    one = analyse.measure_many(x / 255.0, 0.01, cfg, n_workers=1)
    two = analyse.measure_many(x / 255.0, 0.01, cfg, n_workers=2)
    pd.testing.assert_frame_equal(one, two)


def test_compare_evidence_quotes_the_real_medians_of_its_own_diagnostic():
    rows = [{"class": k, "prototype": 0, "diagnostic": d, "value": v, "percentile": 0.5, "real_median": m,
             "reason": ""} for k, d, v, m in ((5, "colour", 0.1, 9.0), (6, "colour", 0.2, 9.0),
                                               (5, "asymmetry", 0.3, 0.2), (6, "asymmetry", 0.1, 0.05))]
    claim = {"id": "x", "kind": "compare", "diagnostic": "asymmetry", "classes": [5], "versus": [6],
             "direction": "higher"}
    out = claims.evaluate_claim(claim, pd.DataFrame(rows), 32)
    assert out["verdict"] == "supported" and "real galaxies' medians: +0.15" in out["evidence"]
