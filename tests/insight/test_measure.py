"""The diagnostics respond to the feature they measure, on small rendered mock galaxies with one
feature switched on or off and the same noise (INSIGHT.md's paired renders)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from _galaxies import config, properties, render
from galaxy_distillation.engine.data import to_float
from galaxy_distillation.engine.zca import ZCA
from galaxy_distillation.insight import measure
from galaxy_distillation.insight.measure import DIAGNOSTICS, denormalise, measure_image

SIGMA = 0.02  # about the mock sky's smoothed noise in display units


def values(image: np.ndarray, **cfg) -> dict[str, float]:
    return measure_image(image, SIGMA, config(**cfg)).values


def test_a_bluer_copy_measures_bluer():
    bluer = 0
    for seed in range(6):
        p = properties(7, seed)
        base = values(render(p, 32, seed), statmorph=False)
        blue = values(render({**p, "colour_tilt": p["colour_tilt"] + 0.35}, 32, seed), statmorph=False)
        bluer += blue["colour"] < base["colour"]
    assert bluer == 6


def test_arms_raise_blue_fraction_and_asymmetry():
    pytest.importorskip("statmorph")
    up_blue = up_asym = 0
    for seed in range(6):
        p = properties(7, 100 + seed, clarity=0.9)
        # arm_fraction 1e-6 (not 0) keeps the renderer's random stream, hence the same noise
        without = values(render({**p, "arm_fraction": 1e-6}, 32, seed))
        with_arms = values(render(p, 32, seed))
        up_blue += with_arms["blue_fraction"] > without["blue_fraction"]
        up_asym += with_arms["asymmetry"] > without["asymmetry"]
    assert up_blue == 6
    assert up_asym >= 5


def test_a_bar_raises_bar_strength_at_128_px_and_is_not_measurable_at_32():
    up = 0
    for seed in range(4):
        p = properties(6, 200 + seed, clarity=0.9)
        without = values(render({**p, "bar_fraction": 0.0}, 128, seed), statmorph=False)
        barred = values(render(p, 128, seed), statmorph=False)
        up += barred["bar_strength"] > without["bar_strength"]
    assert up == 4
    small = measure_image(render(p, 32, 0), SIGMA, config(statmorph=False))
    assert np.isnan(small.values["bar_strength"])
    assert "not measurable at 32 px" in small.reasons["bar_strength"]


def test_denormalisation_round_trip_is_exact():
    rng = np.random.default_rng(0)
    u8 = torch.from_numpy(rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8))
    mean, std = [0.1, 0.2, 0.3], [0.2, 0.25, 0.3]
    transform = {"mean": torch.tensor(mean), "std": torch.tensor(std)}
    back = denormalise(to_float(u8, mean, std), transform)
    assert np.abs(back - u8.numpy() / 255.0).max() < 1e-6
    # with ZCA (MTT's CIFAR path): the saved state's inverse, no clamp
    x = u8.float() / 255.0
    zca = ZCA().fit(x, reg=0.1)
    state = {"mean": torch.zeros(3), "std": torch.ones(3), **{f"zca.{k}": v for k, v in zca.state_dict().items()}}
    assert np.abs(denormalise(zca.transform(x), state) - u8.numpy() / 255.0).max() < 1e-5
    # out of gamut stays out of gamut (what the network sees)
    assert denormalise(torch.full((1, 3, 2, 2), -5.0), transform).max() < 0


@pytest.mark.parametrize("kind", ["noise", "frame", "negative", "nan", "zeros"])
def test_degenerate_images_get_flags_not_crashes(kind):
    rng = np.random.default_rng(1)
    size = 32
    if kind == "noise":  # a prototype that is pure noise in model space, de-normalised
        image = 0.3 + 0.25 * rng.standard_normal((3, size, size))
    elif kind == "frame":  # a smooth blob that fills the frame
        yy, xx = np.indices((size, size))
        image = np.repeat(np.exp(-((xx - 16) ** 2 + (yy - 16) ** 2) / (2 * 40.0**2))[None], 3, 0)
    elif kind == "negative":
        image = -render(properties(0, 3), size, 3)
    elif kind == "nan":
        image = render(properties(0, 3), size, 3)
        image[1, 4, 4] = np.nan
    else:
        image = np.zeros((3, size, size))
    m = measure_image(image, SIGMA, config())
    assert m.flags, kind
    assert all(np.isnan(m.values[d]) for d in DIAGNOSTICS)
    assert all(m.reasons[d] for d in DIAGNOSTICS)


def test_without_statmorph_its_diagnostics_say_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "statmorph", None)  # import statmorph -> ImportError
    m = measure_image(render(properties(7, 5), 32, 5), SIGMA, config())
    for d in measure.STATMORPH_DIAGNOSTICS:
        assert np.isnan(m.values[d]) and m.reasons[d] == "not measurable (statmorph not installed)"
    assert np.isfinite(m.values["colour"])


def test_statmorph_timeout_is_a_flag():
    pytest.importorskip("statmorph")
    m = measure_image(render(properties(7, 6), 32, 6), SIGMA, config(statmorph_timeout_s=1e-4))
    assert "statmorph_timeout" in m.flags and "timed out" in m.reasons["concentration"]


def test_the_lean_statmorph_class_gives_statmorph_s_values():
    statmorph = pytest.importorskip("statmorph")
    import warnings

    image = render(properties(5, 7, clarity=0.9), 64, 7)
    cfg = config()
    lum = image.mean(0)
    lum = lum - lum[:6].mean()
    seg = np.zeros(lum.shape, np.int32)
    seg[16:48, 16:48] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = statmorph.source_morphology(lum, seg, weightmap=np.full(lum.shape, SIGMA))[0]
        values, _, _ = measure._statmorph(lum, seg.astype(bool), np.zeros(lum.shape, bool), SIGMA, cfg)
    for ours, theirs in measure._STATMORPH.items():
        if np.isfinite(values[ours]):
            assert values[ours] == pytest.approx(full[theirs], rel=1e-9, abs=1e-12), ours


def test_photutils_profile_equals_the_numpy_one():
    pytest.importorskip("photutils")
    data = render(properties(7, 8), 32, 8).mean(0)
    edges = np.linspace(0, 16, 9)
    assert np.allclose(measure.radial_profile(data, (15.3, 16.1), edges),
                       measure._radial_profile_numpy(data, (15.3, 16.1), edges), equal_nan=True)
