"""Vote simulation: consistency with the GZ2 tree and with the true class."""

import numpy as np
import pytest

from galaxy_distillation.sky.columns import GZ2_TASKS
from galaxy_distillation.sky.votes import VoteSimulationError, simulate_votes

# the class-defining answer for each class (majority expected for a clear galaxy)
MAJORITY = {
    0: ["t01_smooth_or_features_a01_smooth", "t07_rounded_a16_completely_round"],
    1: ["t01_smooth_or_features_a01_smooth", "t07_rounded_a17_in_between"],
    2: ["t01_smooth_or_features_a01_smooth", "t07_rounded_a18_cigar_shaped"],
    3: ["t01_smooth_or_features_a02_features_or_disk", "t02_edgeon_a04_yes"],
    4: ["t01_smooth_or_features_a02_features_or_disk", "t02_edgeon_a04_yes", "t09_bulge_shape_a27_no_bulge"],
    5: ["t02_edgeon_a05_no", "t03_bar_a06_bar", "t04_spiral_a08_spiral"],
    6: ["t02_edgeon_a05_no", "t03_bar_a06_bar", "t04_spiral_a09_no_spiral"],
    7: ["t02_edgeon_a05_no", "t03_bar_a07_no_bar", "t04_spiral_a08_spiral"],
    8: ["t02_edgeon_a05_no", "t03_bar_a07_no_bar", "t04_spiral_a09_no_spiral"],
}
GZ2_PREFIX = {0: "Er", 1: "Ei", 2: "Ec", 3: "Se", 4: "Sen", 5: "SB", 6: "SB", 7: "S", 8: "S"}


def _task_counts(v, task):
    return np.array([v[f"{task}_{a}_count"] for a in GZ2_TASKS[task]])


@pytest.mark.parametrize("cls", range(9))
def test_counts_fractions_totals_consistent(cls):
    v = simulate_votes(cls, 0.5, np.random.default_rng(cls), 45)
    assert v["total_classifications"] == 45
    total = 0
    for task, answers in GZ2_TASKS.items():
        c = _task_counts(v, task)
        total += c.sum()
        frac = np.array([v[f"{task}_{a}_fraction"] for a in answers])
        deb = np.array([v[f"{task}_{a}_debiased"] for a in answers])
        wfr = np.array([v[f"{task}_{a}_weighted_fraction"] for a in answers])
        assert all(isinstance(v[f"{task}_{a}_count"], int) for a in answers)
        assert all(v[f"{task}_{a}_flag"] in (0, 1) for a in answers)
        if c.sum() == 0:
            assert frac.sum() == deb.sum() == wfr.sum() == 0
        else:
            assert abs(frac.sum() - 1) < 0.01 and abs(wfr.sum() - 1) < 0.01 and abs(deb.sum() - 1) < 0.01
            np.testing.assert_allclose(frac, np.round(c / c.sum(), 3))
            assert ((deb >= 0) & (deb <= 1)).all()
    assert v["total_votes"] == total
    t01 = _task_counts(v, "t01_smooth_or_features").sum()
    assert t01 == 45  # every volunteer answers T01
    # tree consistency: children are reached only through their parent answer
    assert _task_counts(v, "t07_rounded").sum() == v["t01_smooth_or_features_a01_smooth_count"]
    assert _task_counts(v, "t02_edgeon").sum() == v["t01_smooth_or_features_a02_features_or_disk_count"]
    assert _task_counts(v, "t09_bulge_shape").sum() == v["t02_edgeon_a04_yes_count"]
    assert _task_counts(v, "t03_bar").sum() == v["t02_edgeon_a05_no_count"] == _task_counts(v, "t04_spiral").sum()
    assert _task_counts(v, "t10_arms_winding").sum() == v["t04_spiral_a08_spiral_count"]
    assert _task_counts(v, "t06_odd").sum() == 45 - v["t01_smooth_or_features_a03_star_or_artifact_count"]
    assert _task_counts(v, "t08_odd_feature").sum() == v["t06_odd_a14_yes_count"]


@pytest.mark.parametrize("cls", range(9))
def test_clear_galaxy_gets_its_class_majority(cls):
    v = simulate_votes(cls, 1.0, np.random.default_rng(100 + cls), 50)
    for answer in MAJORITY[cls]:
        task = answer.rsplit("_a", 1)[0]
        fr = {a: v[f"{task}_{a}_fraction"] for a in GZ2_TASKS[task]}
        assert v[f"{answer}_fraction"] == max(fr.values()) and v[f"{answer}_fraction"] > 0.7
    assert v["gz2_class"].startswith(GZ2_PREFIX[cls])
    if cls in (7, 8):
        assert not v["gz2_class"].startswith("SB")


def test_ambiguous_galaxies_less_confident():
    rng = np.random.default_rng(0)
    clear = [simulate_votes(7, 0.95, rng, 45)["t03_bar_a07_no_bar_fraction"] for _ in range(20)]
    vague = [simulate_votes(7, 0.1, rng, 45)["t03_bar_a07_no_bar_fraction"] for _ in range(20)]
    assert np.mean(clear) > np.mean(vague) + 0.1


def test_deterministic_for_seed():
    a = simulate_votes(5, 0.6, np.random.default_rng(7), 40)
    b = simulate_votes(5, 0.6, np.random.default_rng(7), 40)
    c = simulate_votes(5, 0.6, np.random.default_rng(8), 40)
    assert a == b
    assert a != c


@pytest.mark.parametrize("kwargs", [dict(true_class=10), dict(clarity=1.5), dict(n_volunteers=0)])
def test_bad_input(kwargs):
    args = dict(true_class=0, clarity=0.5, rng=np.random.default_rng(0), n_volunteers=10) | kwargs
    with pytest.raises(VoteSimulationError):
        simulate_votes(**args)
