"""cvlib.whitening: PCA and ZCA whitening give identity covariance; ZCA is PCA rotated back."""

from __future__ import annotations

import pytest
import torch

from cvlib import whitening as W


@pytest.mark.parametrize("whiten", [W.pca_whitening, W.zca_whitening])
def test_whitening_gives_identity_covariance(whiten):
    gen = torch.Generator().manual_seed(0)
    mixing = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    x = torch.randn(4000, 5, generator=gen, dtype=torch.float64) @ mixing + 3.0
    mean, w = whiten(x, eps=0.0)
    z = (x - mean) @ w.T
    torch.testing.assert_close(z.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(z.T @ z / len(z), torch.eye(5, dtype=torch.float64), atol=1e-8, rtol=0)


def test_zca_is_symmetric_and_pca_is_its_rotation():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(500, 4, generator=gen, dtype=torch.float64) @ torch.randn(4, 4, generator=gen, dtype=torch.float64)
    _, w_pca = W.pca_whitening(x, eps=1e-3)
    _, w_zca = W.zca_whitening(x, eps=1e-3)
    torch.testing.assert_close(w_zca, w_zca.T)
    rotation = w_zca @ torch.linalg.inv(w_pca)  # W_zca = R W_pca with R orthogonal
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(4, dtype=torch.float64), atol=1e-8, rtol=0)
    # eps shrinks variance lambda / (lambda + eps) below 1, never above
    z = (x - x.mean(0)) @ w_pca.T
    var = z.var(0, correction=0)
    assert (var < 1).all() and (var > 0.9).all()


@pytest.mark.parametrize("call,error,match", [
    (lambda: W.pca_whitening(torch.randn(5)), ValueError, r"x must have shape \[N, D\]"),
    (lambda: W.pca_whitening(torch.randn(1, 3)), ValueError, "N >= 2"),
    (lambda: W.zca_whitening([[1.0]]), TypeError, "x must be a torch.Tensor"),
    (lambda: W.zca_whitening(torch.ones(4, 2, dtype=torch.long)), TypeError, "x must have a floating dtype"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
