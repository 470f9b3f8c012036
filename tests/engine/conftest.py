"""Shared fixtures for engine tests: a tiny, separable toy image problem.

Usage in a test::

    def test_x(toy_dataset):
        train_x, train_y, test_x, test_y = toy_dataset(num_classes=3, n_per_class=20, size=16, seed=0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

# Distinct blob colours (RGB in roughly [-1, 1] units, added to a noisy grey background).
_PALETTE = torch.tensor(
    [
        [2.0, -1.0, -1.0],  # red
        [-1.0, 2.0, -1.0],  # green
        [-1.0, -1.0, 2.0],  # blue
        [2.0, 2.0, -1.0],  # yellow
        [-1.0, 2.0, 2.0],  # cyan
        [2.0, -1.0, 2.0],  # magenta
    ]
)


def _blobs(labels: torch.Tensor, size: int, g: torch.Generator, noise: float) -> torch.Tensor:
    """Images (N, 3, size, size): a Gaussian blob coloured by class on a noisy background.

    Classes beyond the palette reuse colours with a different blob radius (small vs large).
    """
    n = labels.shape[0]
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    centre = size / 2 + (torch.rand(n, 2, generator=g) - 0.5) * size / 3  # (N, 2) jitter
    colour_idx = labels % _PALETTE.shape[0]
    big = (labels // _PALETTE.shape[0]) % 2
    radius = size / 6 * (1.0 + big.float())  # (N,)
    d2 = (yy[None] - centre[:, 0, None, None]) ** 2 + (xx[None] - centre[:, 1, None, None]) ** 2
    blob = torch.exp(-d2 / (2 * radius[:, None, None] ** 2))  # (N, H, W)
    colour = _PALETTE[colour_idx]  # (N, 3)
    x = blob[:, None] * colour[:, :, None, None]
    x = x + noise * torch.randn(n, 3, size, size, generator=g)
    return x


def make_toy_dataset(
    num_classes: int = 3, n_per_class: int = 20, size: int = 16, seed: int = 0, n_test_per_class: int | None = None,
    noise: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Separable toy problem: returns (train_x (N,3,S,S) float32, train_y (N,) long, test_x, test_y).

    Class k = blob of colour k (mod 6; larger blob for k >= 6). Labels are class-major ordered.
    """
    if num_classes < 2 or num_classes > 12:
        raise ValueError("toy dataset supports 2..12 classes")
    g = torch.Generator().manual_seed(seed)
    n_test = n_per_class if n_test_per_class is None else n_test_per_class
    ytr = torch.arange(num_classes).repeat_interleave(n_per_class)
    yte = torch.arange(num_classes).repeat_interleave(n_test)
    return _blobs(ytr, size, g, noise), ytr, _blobs(yte, size, g, noise), yte


@pytest.fixture(scope="session")
def toy_dataset() -> Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The :func:`make_toy_dataset` factory."""
    return make_toy_dataset


@pytest.fixture(scope="session")
def tiny_arch() -> dict:
    """A very small ConvNet spec for fast tests (width 8, depth 2)."""
    return {"arch": "convnet", "width": 8, "depth": 2, "norm": "instancenorm", "pooling": "avgpooling"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread per engine test module (restored afterwards): tiny tensors gain nothing
    from more, and OpenMP spin-waiting on a loaded 2-core machine makes tiny ops ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
