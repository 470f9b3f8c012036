"""init_synthetic / random_real_subset: seeded, class-balanced, class-major, clear errors."""

import pytest
import torch

from galaxy_distillation.engine.synthetic import SyntheticInitError, init_synthetic, random_real_subset


def _data(n_per_class=(5, 5, 5)):
    ys = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    x = torch.arange(len(ys), dtype=torch.float32)[:, None, None, None].expand(-1, 3, 4, 4).clone()
    return x, ys  # image i is filled with the value i, so we can trace it back


def test_random_real_subset_is_class_balanced_and_class_major():
    x, y = _data()
    imgs, labels = random_real_subset(x, y, 3, 2, torch.Generator().manual_seed(0))
    assert imgs.shape == (6, 3, 4, 4)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    src = imgs[:, 0, 0, 0].long()
    assert torch.equal(y[src], labels)  # every picked image has the label it is given
    assert len(set(src.tolist())) == 6  # without replacement


def test_seeded_and_seed_sensitive():
    x, y = _data((20, 20, 20))
    a, _ = random_real_subset(x, y, 3, 3, torch.Generator().manual_seed(1))
    b, _ = random_real_subset(x, y, 3, 3, torch.Generator().manual_seed(1))
    c, _ = random_real_subset(x, y, 3, 3, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_init_real_copies_images_and_noise_is_gaussian():
    x, y = _data()
    imgs, labels = init_synthetic(x, y, 3, 1, "real", torch.Generator().manual_seed(0))
    assert imgs.dtype == torch.float32 and labels.tolist() == [0, 1, 2]
    imgs[:] = -1  # a copy, not a view
    assert x.min() >= 0
    noise, nl = init_synthetic(torch.zeros(300, 3, 8, 8), torch.arange(3).repeat(100), 3, 50, "noise",
                               torch.Generator().manual_seed(0))
    assert noise.shape == (150, 3, 8, 8) and nl.tolist() == sum([[c] * 50 for c in range(3)], [])
    assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1) < 0.05


def test_errors_are_clear():
    x, y = _data((5, 1, 5))
    with pytest.raises(SyntheticInitError, match="class 1 has 1 training images, fewer than ipc=2"):
        init_synthetic(x, y, 3, 2, "real", torch.Generator())
    # noise init does not need real images per class
    init_synthetic(x, y, 3, 2, "noise", torch.Generator())
    with pytest.raises(SyntheticInitError, match="unknown init"):
        init_synthetic(x, y, 3, 1, "zeros", torch.Generator())
    with pytest.raises(SyntheticInitError, match="labels outside"):
        random_real_subset(x, y, 2, 1, torch.Generator())
    with pytest.raises(SyntheticInitError, match="must be \\(N, C, H, W\\)"):
        random_real_subset(x[0], y, 3, 1, torch.Generator())
