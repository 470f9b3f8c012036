"""ZCA whitening of images, exactly as MTT does it (the galaxy runs use none).

MTT (``buffer.py`` / ``distill.py`` with ``--zca``) loads the images with ``ToTensor`` only,
i.e. in [0, 1] *without* mean/std normalisation, and whitens them with kornia's
``ZCAWhitening(eps=0.1)``. :meth:`ZCA.fit` calls kornia's own ``zca_mean`` (the function
behind ``ZCAWhitening.fit``) with the same ``eps`` and the unbiased covariance, so the
transform is kornia's: ``transform(x) = (x - mu) @ W`` with ``W = U diag(1/sqrt(S + eps)) U^T``
(``cov = U diag(S) U^T`` over the flattened (N, C*H*W) images), and an exact inverse. The fit
runs in float64 (kornia accepts any dtype) for a stable inverse; the matrices are stored in
float32. D = C*H*W must stay moderate (3x32x32 = 3,072 is fine, 3x128x128 is not).
"""

from __future__ import annotations

import torch

__all__ = ["ZCAError", "ZCA", "MTT_ZCA_EPS"]

_MAX_DIM = 20_000
MTT_ZCA_EPS = 0.1  # kornia.enhance.ZCAWhitening(eps=0.1), as in MTT


class ZCAError(ValueError):
    """Raised for unfitted use or inputs of the wrong shape."""


class ZCA:
    """ZCA whitening transform with an exact inverse."""

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None  # (D,)
        self.matrix: torch.Tensor | None = None  # (D, D) whitening
        self.inverse_matrix: torch.Tensor | None = None  # (D, D) colouring
        self.shape: tuple[int, int, int] | None = None  # (C, H, W)
        self.reg: float | None = None

    def fit(self, x: torch.Tensor, reg: float = MTT_ZCA_EPS) -> ZCA:
        """Fit on ``x`` (N, C, H, W) float (MTT: [0, 1] images); ``reg`` is kornia's ``eps``."""
        if x.dim() != 4:
            raise ZCAError(f"ZCA.fit expects (N, C, H, W) images, got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        d = c * h * w
        if n < 2:
            raise ZCAError("ZCA.fit needs at least 2 images")
        if d > _MAX_DIM:
            raise ZCAError(f"ZCA on {d}-dimensional images is too large (max {_MAX_DIM}); downsample or skip ZCA")
        if reg < 0:
            raise ZCAError(f"reg must be >= 0, got {reg}")
        from kornia.enhance import zca_mean

        flat = x.detach().reshape(n, d).to(torch.float32)
        matrix, mu, inverse = zca_mean(flat, dim=0, unbiased=True, eps=float(reg), return_inverse=True)
        if reg == 0 and not bool(torch.isfinite(matrix).all()):
            raise ZCAError("covariance is singular: use reg > 0 (or more images than dimensions)")
        self.mean = mu.reshape(d).to(torch.float32)
        self.matrix = matrix.to(torch.float32)
        self.inverse_matrix = inverse.to(torch.float32)
        self.shape = (c, h, w)
        self.reg = float(reg)
        return self

    def _check(self, x: torch.Tensor) -> None:
        if self.matrix is None or self.shape is None:
            raise ZCAError("ZCA is not fitted: call fit() first")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.shape:
            raise ZCAError(f"expected images (N, {self.shape[0]}, {self.shape[1]}, {self.shape[2]}), got {tuple(x.shape)}")

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Whiten ``x`` (N, C, H, W) -> (N, C, H, W) float32 (on x's device)."""
        self._check(x)
        assert self.mean is not None and self.matrix is not None
        flat = x.reshape(x.shape[0], -1).to(torch.float32)
        out = (flat - self.mean.to(x.device)) @ self.matrix.to(x.device)
        return out.reshape(x.shape)

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`transform`: (N, C, H, W) whitened -> (N, C, H, W) in the original space."""
        self._check(x)
        assert self.mean is not None and self.inverse_matrix is not None
        flat = x.reshape(x.shape[0], -1).to(torch.float32)
        out = flat @ self.inverse_matrix.to(x.device) + self.mean.to(x.device)
        return out.reshape(x.shape)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors describing the fitted transform (for ``torch.save`` / safetensors)."""
        if self.matrix is None or self.shape is None:
            raise ZCAError("ZCA is not fitted: nothing to save")
        assert self.mean is not None and self.inverse_matrix is not None and self.reg is not None
        return {
            "mean": self.mean.clone(),
            "matrix": self.matrix.clone(),
            "inverse_matrix": self.inverse_matrix.clone(),
            "shape": torch.tensor(self.shape, dtype=torch.int64),
            "reg": torch.tensor([self.reg], dtype=torch.float64),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> ZCA:
        """Rebuild a fitted :class:`ZCA` from :meth:`state_dict` output."""
        missing = {"mean", "matrix", "inverse_matrix", "shape"} - set(state)
        if missing:
            raise ZCAError(f"ZCA state is missing {sorted(missing)}")
        z = cls()
        z.mean = state["mean"].to(torch.float32)
        z.matrix = state["matrix"].to(torch.float32)
        z.inverse_matrix = state["inverse_matrix"].to(torch.float32)
        c, h, w = (int(v) for v in state["shape"].tolist())
        z.shape = (c, h, w)
        z.reg = float(state["reg"].item()) if "reg" in state else 0.0
        return z
