"""cvlib.models: PlainVGG's layout, its norm layer, and cvlib's BatchNorm2d inside it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cvlib import models as M
from cvlib.normalization import BatchNorm2d


def test_plain_vgg_shapes_and_norm_layer():
    plain, bn = M.PlainVGG(), M.PlainVGG(norm_layer=nn.BatchNorm2d)
    assert sum(isinstance(m, nn.Conv2d) for m in plain.modules()) == 10
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 10
    assert all(m.bias is None for m in bn.modules() if isinstance(m, nn.Conv2d))
    assert plain(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    ours = M.PlainVGG(norm_layer=BatchNorm2d)
    ours.load_state_dict(bn.state_dict())
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(ours(x), bn(x), rtol=1e-4, atol=1e-5)
    assert M.PlainVGG(cfg=(8, "M", 8, "M"), in_channels=3)(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="cfg entries"):
        M.PlainVGG(cfg=(8, "X"))
