"""cvlib.diagnostics: confidence, the fit verdict, the measured receptive field and distinct units."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cvlib.device import seed_everything
from cvlib.diagnostics import count_distinct_units, diagnose_fit, input_gradient_map, max_softmax
from cvlib.models import SmallCNN


def _batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_max_softmax_range_and_mode():
    seed_everything(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).train()
    x, y = _batch(20)
    conf = max_softmax(model, [(x[:12], y[:12]), (x[12:], y[12:])], "cpu")
    assert conf.shape == (20,) and bool(((conf >= 0.1) & (conf <= 1)).all()) and model.training
    torch.testing.assert_close(conf, F.softmax(model(x), 1).amax(1).detach())


def test_max_softmax_keeps_float64_and_lifts_bf16():
    seed_everything(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).double()
    x, y = _batch(8)
    conf = max_softmax(model, [(x.double(), y)], "cpu")
    assert conf.dtype == torch.float64  # not rounded to float32: the book's CPU scale is float64
    torch.testing.assert_close(conf, F.softmax(model(x.double()), 1).amax(1).detach(), rtol=0, atol=0)
    half = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).to(torch.bfloat16)
    assert max_softmax(half, [(x.to(torch.bfloat16), y)], "cpu").dtype == torch.float32


@pytest.mark.parametrize("train_err,val_err,verdict", [
    (0.30, 0.31, "underfitting"), (0.30, 0.90, "underfitting"), (0.01, 0.20, "overfitting"),
    (0.01, 0.04, "good fit"), (0.05, 0.10, "good fit")])
def test_diagnose_fit_rules(train_err, val_err, verdict):
    assert diagnose_fit(train_err, val_err) == verdict


def test_diagnose_fit_rejects_percentages():
    with pytest.raises(ValueError, match="val_err"):
        diagnose_fit(0.1, 12.0)


def test_input_gradient_map_measures_the_analytic_receptive_field():
    seed_everything(0)
    # 3x3 conv, 3x3 conv, 2x2 pool: 3 + 2 = 5, then + 1 for the pool = 6
    model = SmallCNN(width=4).eval()
    grad = input_gradient_map(model.features, torch.randn(8, 1, 16, 16))
    rows, cols = (grad > 0).nonzero().unbind(1)
    assert (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1) == (6, 6)
    assert int((grad > 0).sum()) == 36
    model.train()  # batch statistics connect every pixel to every output
    assert bool((input_gradient_map(model.features, torch.randn(8, 1, 16, 16)) > 0).all())
    # a dilated conv: taps 2 apart, the field has holes
    grad = input_gradient_map(nn.Conv2d(1, 1, 3, dilation=2), torch.randn(2, 1, 9, 9), position=(0, 0))
    assert (grad > 0).nonzero().tolist() == [[r, c] for r in (0, 2, 4) for c in (0, 2, 4)]
    with pytest.raises(ValueError, match="feature map"):
        input_gradient_map(nn.Flatten(), torch.randn(1, 1, 4, 4))
    with pytest.raises(ValueError, match="outside"):
        input_gradient_map(nn.Identity(), torch.randn(1, 1, 4, 4), position=(4, 0))


def test_count_distinct_units():
    w = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0], [1.0, 2.001]])
    assert count_distinct_units(w) == 3 and count_distinct_units(w, atol=0.01) == 2
    assert count_distinct_units(torch.zeros(64, 8)) == 1 and count_distinct_units(torch.randn(5, 3, 3, 3)) == 5
    with pytest.raises(ValueError, match="weight"):
        count_distinct_units(torch.zeros(4))


def test_tensor_arguments_are_checked_by_type_then_shape():
    with pytest.raises(TypeError, match="inputs must be a torch.Tensor, got list"):
        input_gradient_map(nn.Identity(), [[0.0]])
    with pytest.raises(TypeError, match="inputs must have a floating dtype, got torch.int64"):
        input_gradient_map(nn.Identity(), torch.zeros(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"inputs must be a Tensor\[N, C, H, W\]"):
        input_gradient_map(nn.Identity(), torch.zeros(4, 4))
    with pytest.raises(TypeError, match="weight must be a torch.Tensor, got list"):
        count_distinct_units([[1.0]])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        max_softmax(lambda x: x, [], "cpu")
