"""Tests for engine.zca."""

import pytest
import torch

from galaxy_distillation.engine import ZCA, ZCAError


def _correlated(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = 3 * 4 * 4
    mix = torch.randn(d, d, generator=g) / d**0.5 + torch.eye(d)
    z = torch.randn(n, d, generator=g) @ mix + 0.5
    return z.view(n, 3, 4, 4)


def test_roundtrip_and_whitening():
    x = _correlated()
    zca = ZCA().fit(x, reg=1e-6)
    w = zca.transform(x)
    assert w.shape == x.shape
    torch.testing.assert_close(zca.inverse_transform(w), x, rtol=1e-3, atol=1e-3)
    flat = w.reshape(w.shape[0], -1).double()
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(cov.shape[0], dtype=torch.float64), atol=1e-2)
    assert flat.mean(0).abs().max() < 1e-4


def test_regularised_whitening_shrinks_and_state_roundtrip():
    x = _correlated()
    zca = ZCA().fit(x, reg=0.1)
    w = zca.transform(x)
    torch.testing.assert_close(zca.inverse_transform(w), x, rtol=1e-3, atol=1e-3)
    evals = torch.linalg.eigvalsh(torch.cov(w.reshape(w.shape[0], -1).T.double()))
    assert evals.max() < 1.0 + 1e-3  # S / (S + reg) < 1
    z2 = ZCA.from_state_dict(zca.state_dict())
    torch.testing.assert_close(z2.transform(x), w)


def test_errors():
    with pytest.raises(ZCAError, match="not fitted"):
        ZCA().transform(torch.zeros(2, 3, 4, 4))
    zca = ZCA().fit(_correlated(50), reg=0.1)
    with pytest.raises(ZCAError, match="expected images"):
        zca.transform(torch.zeros(2, 3, 5, 5))
    with pytest.raises(ZCAError, match=r"\(N, C, H, W\)"):
        ZCA().fit(torch.zeros(10, 48))
