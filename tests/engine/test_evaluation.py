"""Tests for engine.evaluation (the train-fresh-nets protocol)."""

import numpy as np
import pytest
import torch

from _configs import eval_config
from galaxy_distillation.engine import EvaluationError, evaluate_images

CPU = torch.device("cpu")
ARCH = {"arch": "convnet", "width": 8, "depth": 2}


@pytest.fixture(scope="module")
def toy(toy_dataset):
    return toy_dataset(num_classes=3, n_per_class=10, size=16, seed=0, n_test_per_class=20)


def _cfg(**kw):
    base = dict(n_nets=3, epochs=15, batch_size=16, arch=ARCH, curve_every=5, vmap_on_cpu=True)
    base.update(kw)
    return eval_config(**base)


@pytest.fixture(scope="module")
def vmap_result(toy):
    return evaluate_images(*toy, num_classes=3, lr=0.01, config=_cfg(use_vmap=True), seed=0, device=CPU, progress=False)


def test_informative_images_reach_high_accuracy(vmap_result):
    r = vmap_result
    assert r.used_vmap
    assert len(r.accs) == 3 and min(r.accs) >= 90.0
    assert r.mean == pytest.approx(np.mean(r.accs)) and r.std == pytest.approx(np.std(r.accs))
    assert r.curve_epochs == [0, 5, 10, 15]
    assert all(len(c) == 4 for c in r.curves) and all(c[-1] == a for c, a in zip(r.curves, r.accs))


def test_vmap_equals_loop(toy, vmap_result):
    loop = evaluate_images(*toy, num_classes=3, lr=0.01, config=_cfg(use_vmap=False), seed=0, device=CPU, progress=False)
    assert not loop.used_vmap
    np.testing.assert_allclose(np.array(loop.curves), np.array(vmap_result.curves), atol=100.0 / 60 + 1e-9)
    assert loop.accs == pytest.approx(vmap_result.accs, abs=100.0 / 60 + 1e-9)  # at most one test image apart


def test_deterministic_and_seed_dependent(toy, vmap_result):
    again = evaluate_images(*toy, num_classes=3, lr=0.01, config=_cfg(use_vmap=True), seed=0, device=CPU, progress=False)
    assert again.curves == vmap_result.curves
    other = evaluate_images(*toy, num_classes=3, lr=0.01, config=_cfg(use_vmap=True), seed=1, device=CPU, progress=False)
    assert other.curves != vmap_result.curves  # different inits give different early curves


def test_noise_images_give_about_chance(toy):
    x, y, tx, ty = toy
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    r = evaluate_images(noise, y, tx, ty, num_classes=3, lr=0.01, config=_cfg(n_nets=4, curve_every=0), seed=0,
                        device=CPU, progress=False)
    assert r.mean < 55.0  # chance is 33 %, informative images give > 90 %


def test_tiny_distilled_set_and_batchnorm_fallback(toy):
    x, y, tx, ty = toy
    idx = torch.tensor([0, 10, 20])  # one image per class (IPC 1): batch = min(batch_size, N) = 3
    cfg = _cfg(n_nets=2, epochs=3, arch={**ARCH, "norm": "batchnorm"}, curve_every=0)
    r = evaluate_images(x[idx], y[idx], tx, ty, num_classes=3, lr=0.01, config=cfg, seed=0, device=CPU, progress=False)
    assert not r.used_vmap and len(r.accs) == 2 and r.curve_epochs == [3]
    small = dict(n_nets=2, epochs=1, curve_every=0)
    assert not evaluate_images(x, y, tx, ty, 3, 0.01, _cfg(**small, vmap_on_cpu=False), seed=0, device=CPU,
                               progress=False).used_vmap
    assert not evaluate_images(x, y, tx, ty, 3, 0.01, _cfg(**small, vmap_max_images=16), seed=0, device=CPU,
                               progress=False).used_vmap


def test_bad_inputs(toy):
    x, y, tx, ty = toy
    with pytest.raises(EvaluationError, match="learning rate"):
        evaluate_images(x, y, tx, ty, 3, lr=-1.0, config=_cfg(), seed=0, device=CPU, progress=False)
    with pytest.raises(EvaluationError, match="labels must be"):
        evaluate_images(x, y[:-1], tx, ty, 3, lr=0.01, config=_cfg(), seed=0, device=CPU, progress=False)
    with pytest.raises(EvaluationError, match="differ"):
        evaluate_images(x, y, tx[:, :, :8, :8], ty, 3, lr=0.01, config=_cfg(), seed=0, device=CPU, progress=False)
