"""Renderer: shapes, determinism and class-dependent appearance."""

import numpy as np
import pytest

from galaxy_distillation.sky.properties import RenderError, draw_properties
from galaxy_distillation.sky.render import render_galaxy


def _moments(img: np.ndarray) -> tuple[float, float]:
    """(elongation 1 - minor/major from 2nd moments, (B - R) colour) of the central galaxy."""
    x = img[106:318, 106:318].astype(np.float64)
    lum = x.mean(axis=2)
    yy, xx = np.mgrid[:212, :212]
    w = np.clip(lum - np.median(lum), 0, None) * (np.hypot(yy - 105.5, xx - 105.5) < 70)
    w = np.where(w > 0.25 * w.max(), w, 0)
    tot = w.sum()
    my, mx = (w * yy).sum() / tot, (w * xx).sum() / tot
    cxx, cyy = (w * (xx - mx) ** 2).sum() / tot, (w * (yy - my) ** 2).sum() / tot
    cxy = (w * (xx - mx) * (yy - my)).sum() / tot
    ev = np.linalg.eigvalsh([[cxx, cxy], [cxy, cyy]])
    colour = ((x[..., 2] - x[..., 0]) * w).sum() / tot
    return 1 - np.sqrt(ev[0] / ev[1]), colour


def test_shape_dtype_and_determinism():
    img, props = render_galaxy(5, np.random.default_rng(3))
    assert img.shape == (424, 424, 3) and img.dtype == np.uint8
    assert 0 <= props["clarity"] <= 1 and props["true_class"] == 5
    img2, props2 = render_galaxy(5, np.random.default_rng(3))
    assert np.array_equal(img, img2) and props == props2
    img3, _ = render_galaxy(5, np.random.default_rng(4))
    assert not np.array_equal(img, img3)
    small, _ = render_galaxy(0, np.random.default_rng(3), size=64)
    assert small.shape == (64, 64, 3)
    # galaxy centred: the centre is brighter than the sky in the corners
    assert img[200:224, 200:224].mean() > 3 * img[:40, :40].mean() + 5


def test_class_dependent_appearance():
    rng = np.random.default_rng(0)
    stats = {c: [_moments(render_galaxy(c, rng)[0]) for _ in range(4)] for c in (0, 2, 4)}
    elong = {c: np.mean([s[0] for s in v]) for c, v in stats.items()}
    colour = {c: np.mean([s[1] for s in v]) for c, v in stats.items()}
    assert elong[2] > elong[0] + 0.2  # cigars are elongated, round ones are not
    assert elong[4] > elong[0] + 0.3
    assert colour[4] > colour[0] + 10  # edge-on disks bluer than ellipticals


def test_axis_ratio_ranges():
    rng = np.random.default_rng(1)
    for c, (lo, hi) in {0: (0.8, 1.0), 1: (0.5, 0.8), 2: (0.2, 0.45)}.items():
        qs = [draw_properties(c, rng)["axis_ratio"] for _ in range(50)]
        assert lo <= min(qs) and max(qs) <= hi
    assert all(draw_properties(5, rng)["bar_fraction"] > 0 for _ in range(10))
    assert all(draw_properties(7, rng)["bar_fraction"] == 0 and draw_properties(7, rng)["n_arms"] >= 1 for _ in range(10))


@pytest.mark.parametrize("args", [(9,), (-1,), ("a",)])
def test_bad_class(args):
    with pytest.raises(RenderError):
        render_galaxy(*args, rng=np.random.default_rng(0))
