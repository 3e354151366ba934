"""cvlib.constraints: max-norm equals torch.renorm, in place."""

from __future__ import annotations

import pytest
import torch

from cvlib import constraints as C


def test_max_norm_matches_torch_renorm():
    gen = torch.Generator().manual_seed(2)
    for shape in [(6, 4), (5, 3, 3, 3)]:
        w = torch.randn(shape, generator=gen, dtype=torch.float64) * torch.linspace(0.1, 3, shape[0], dtype=torch.float64).view(-1, *(1,) * (len(shape) - 1))
        expected = torch.renorm(w, p=2, dim=0, maxnorm=1.5)
        out = C.max_norm_(w, 1.5)
        assert out is w
        torch.testing.assert_close(w, expected, rtol=1e-6, atol=1e-7)
        assert (w.flatten(1).norm(dim=1) <= 1.5 + 1e-9).all()


@pytest.mark.parametrize("call,error,match", [
    (lambda: C.max_norm_(torch.randn(3), 1.0), ValueError, "weight must have shape"),
    (lambda: C.max_norm_(torch.randn(3, 3), 0.0), ValueError, "max_norm"),
    (lambda: C.max_norm_([[1.0]], 1.0), TypeError, "weight must be a torch.Tensor"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
