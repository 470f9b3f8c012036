"""Tests for engine.dsa (differentiable siamese augmentation)."""

import pytest
import torch

from galaxy_distillation.engine import DSA_OPERATIONS, DSAError, DSAParams, dsa_augment, make_generator

OPS = ["color", "crop", "cutout", "flip", "scale", "rotate"]


def _x(seed=0, b=6):
    return torch.randn(b, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_identity_strategies():
    x = _x()
    g = make_generator(0)
    for s in ("", "none", "None"):
        assert dsa_augment(x, s, g) is x


@pytest.mark.parametrize("op", OPS)
def test_each_op_changes_images_and_passes_gradients(op):
    x = _x().requires_grad_(True)
    y = dsa_augment(x, op, make_generator(3))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.allclose(y, x)
    (g,) = torch.autograd.grad((y * torch.randn_like(y)).sum(), x)
    assert g.abs().sum() > 0


@pytest.mark.parametrize("op", OPS)
def test_siamese_same_generator_state_same_transform(op):
    a, b = _x(0), _x(1)
    ya = dsa_augment(a, op, make_generator(7))
    yb = dsa_augment(b, op, make_generator(7))
    # the same transform applied to a linear combination commutes for the geometric ops
    if op in ("crop", "cutout", "flip", "scale", "rotate"):
        yab = dsa_augment(a + b, op, make_generator(7))
        torch.testing.assert_close(yab, ya + yb, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dsa_augment(a, op, make_generator(7)), ya)
    assert not torch.allclose(dsa_augment(a, op, make_generator(8)), ya)


def test_full_strategy_siamese_on_two_batches():
    a, b = _x(0), _x(1)
    g1, g2 = make_generator(11), make_generator(11)
    for _ in range(5):  # generators advance in lockstep
        torch.testing.assert_close(dsa_augment(a, "color_crop_cutout_flip_scale_rotate", g1),
                                   dsa_augment(a, "color_crop_cutout_flip_scale_rotate", g2))
    ya = dsa_augment(a, "color_crop_cutout_flip_scale_rotate", make_generator(5))
    yb = dsa_augment(a, "color_crop_cutout_flip_scale_rotate", make_generator(6))
    assert not torch.allclose(ya, yb)
    assert dsa_augment(b, "crop_flip", make_generator(1)).shape == b.shape


def test_single_mode_picks_one_op_and_all_mode_applies_every_op():
    x = torch.ones(4, 3, 16, 16)
    picked = set()
    g = make_generator(0)
    for _ in range(40):
        y = dsa_augment(x, "flip_cutout", g)
        picked.add("cutout" if (y == 0).any() else "flip")
    assert picked == {"flip", "cutout"}  # flip leaves a constant image unchanged
    y = dsa_augment(x, "flip_cutout", make_generator(0), DSAParams(mode="all"))
    assert (y == 0).any()


def test_op_semantics():
    x = _x()
    # flip with prob 1 flips every image
    torch.testing.assert_close(dsa_augment(x, "flip", make_generator(0), DSAParams(prob_flip=1.0)), x.flip(3))
    # cutout zeroes an 8x8 square (ratio 0.5 of 16) per image, at most 64 pixels
    y = dsa_augment(torch.ones(8, 1, 16, 16), "cutout", make_generator(0))
    zeros = (y == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 64).all()
    # crop translates by at most 2 pixels (0.125 * 16): the image mass is preserved up to the borders
    img = torch.zeros(8, 1, 16, 16)
    img[:, :, 7, 7] = 1.0
    y = dsa_augment(img, "crop", make_generator(0))
    pos = y.flatten(1).argmax(1)
    r, c = pos // 16, pos % 16
    assert ((r - 7).abs() <= 2).all() and ((c - 7).abs() <= 2).all()
    torch.testing.assert_close(y.sum(), img.sum())
    # colour keeps shape; scale/rotate with zero strength are identity
    ident = DSAParams(ratio_scale=1.0, ratio_rotate=0.0)
    torch.testing.assert_close(dsa_augment(x, "scale", make_generator(0), ident), x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dsa_augment(x, "rotate", make_generator(0), ident), x, rtol=1e-5, atol=1e-5)


def test_bad_inputs():
    with pytest.raises(DSAError, match="unknown DSA operation"):
        dsa_augment(_x(), "color_blur", make_generator(0))
    with pytest.raises(DSAError, match=r"\(B, C, H, W\)"):
        dsa_augment(torch.zeros(3, 16, 16), "flip", make_generator(0))
    with pytest.raises(DSAError, match="floating"):
        dsa_augment(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "flip", make_generator(0))
    with pytest.raises(DSAError, match="mode"):
        dsa_augment(_x(), "flip", make_generator(0), DSAParams(mode="multi"))
    assert set(OPS) == set(DSA_OPERATIONS)


def test_clone_generator_gives_siamese_pairs_for_real_and_synthetic_batches():
    from galaxy_distillation.engine import clone_generator

    real, syn = _x(0), _x(1)
    g = make_generator(21)
    torch.manual_seed(0)  # the global RNG must play no part
    g_syn = clone_generator(g)
    y_real = dsa_augment(real, "flip", g, DSAParams(prob_flip=0.5))
    y_syn = dsa_augment(syn, "flip", g_syn, DSAParams(prob_flip=0.5))
    flipped_real = [(torch.equal(a, b.flip(2))) for a, b in zip(y_real, real)]
    flipped_syn = [(torch.equal(a, b.flip(2))) for a, b in zip(y_syn, syn)]
    assert flipped_real == flipped_syn and any(flipped_real) and not all(flipped_real)
