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


def test_matches_kornia_zca_whitening_as_mtt_uses_it():
    """MTT: kornia.enhance.ZCAWhitening(eps=0.1) fitted on the [0, 1] images."""
    from kornia.enhance import ZCAWhitening

    g = torch.Generator().manual_seed(3)
    x = torch.rand(200, 3, 6, 6, generator=g) * 0.5 + torch.rand(200, 1, 1, 1, generator=g) * 0.5
    ours = ZCA().fit(x)  # default eps = MTT's 0.1
    assert ours.reg == 0.1
    kornia_zca = ZCAWhitening(eps=0.1, compute_inv=True).fit(x)
    torch.testing.assert_close(ours.transform(x), kornia_zca(x), rtol=1e-4, atol=1e-4)
    w = ours.transform(x)
    torch.testing.assert_close(ours.inverse_transform(w), kornia_zca.inverse_transform(w), rtol=1e-4, atol=1e-4)


def test_prepare_data_whitens_unnormalised_images_like_mtt():
    """With ZCA the pipeline fits on x/255 (no mean/std normalisation first), as MTT does."""
    from kornia.enhance import ZCAWhitening

    from galaxy_distillation.pipelines.prepare.nodes import prepare_data

    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (120, 3, 5, 5), generator=g, dtype=torch.uint8)
    test = torch.randint(0, 256, (20, 3, 5, 5), generator=g, dtype=torch.uint8)
    model_input = {"train_x": train, "train_y": torch.zeros(120, dtype=torch.long), "test_x": test,
                   "test_y": torch.zeros(20, dtype=torch.long), "class_names": ["a"], "name": "cifar10",
                   "mean": [0.3, 0.4, 0.5], "std": [0.2, 0.2, 0.2]}
    data = prepare_data(model_input, zca="auto")
    kornia_zca = ZCAWhitening(eps=0.1).fit(train.float() / 255)
    torch.testing.assert_close(data.train_x, kornia_zca(train.float() / 255), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(data.test_x, kornia_zca(test.float() / 255), rtol=1e-4, atol=1e-4)
    assert data.mean == [0.0] * 3 and data.std == [1.0] * 3  # display: ZCA inverse gives [0, 1] directly
    back = data.zca.inverse_transform(data.test_x)
    torch.testing.assert_close(back, test.float() / 255, rtol=1e-3, atol=1e-3)
