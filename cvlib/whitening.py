"""PCA and ZCA whitening (chapter 06): the full decorrelation that batch norm approximates.

Batch norm standardizes each channel on its own; whitening also removes the correlations
between them, at the cost of an eigendecomposition of the ``D x D`` covariance (LeCun et al.
1998, Sec. 4.3; Ioffe and Szegedy 2015, Sec. 2). The eigendecomposition runs in float64 and
the matrix returned has the input's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import floating_tensor

__all__ = ["pca_whitening", "zca_whitening"]


def _eig_of_covariance(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    floating_tensor(x, "x")
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must have shape [N, D] with N >= 2, got {tuple(x.shape)}")
    mean = x.mean(dim=0)  # [D]
    centred = (x - mean).double()
    cov = centred.T @ centred / x.shape[0]  # [D, D], biased (1/N)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending; columns are eigenvectors
    return mean, eigenvalues.clamp_min(0), eigenvectors


def pca_whitening(x: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """PCA whitening of rows ``x[N, D]``: returns ``(mean[D], W[D, D])`` with
    ``W = diag(lambda + eps)^{-1/2} U^T`` (eigenvectors ``U`` of the covariance, largest
    eigenvalue first), so ``z = (x - mean) @ W.T`` has covariance ``diag(lambda / (lambda + eps))``,
    the identity where ``lambda >> eps``. ``z`` is expressed in the principal axes."""
    mean, lam, u = _eig_of_covariance(x)
    lam, u = lam.flip(0), u.flip(1)  # largest variance first
    return mean, ((lam + eps).rsqrt()[:, None] * u.T).to(x.dtype)


def zca_whitening(x: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """ZCA whitening of rows ``x[N, D]``: ``W = U diag(lambda + eps)^{-1/2} U^T``, the PCA
    whitening rotated back to pixel axes. Same covariance of ``z`` as :func:`pca_whitening`;
    of all whitening matrices it changes the data least (Bell and Sejnowski 1997)."""
    mean, lam, u = _eig_of_covariance(x)
    return mean, ((u * (lam + eps).rsqrt()) @ u.T).to(x.dtype)
