"""cvlib.tta: flip test-time augmentation averages the image and its mirror, and nothing else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cvlib.device import seed_everything
from cvlib.models import SmallCNN
from cvlib.tta import FlipTTA


def test_flip_tta_is_the_average_of_the_image_and_its_mirror():
    seed_everything(0)
    model = SmallCNN(width=4).eval()
    x = torch.randn(5, 1, 8, 8)
    tta = FlipTTA(model)
    with torch.no_grad():
        out = tta(x)
        manual = (model(x) + model(torch.flip(x, dims=[3]))) / 2
    assert out.shape == (5, 10)
    torch.testing.assert_close(out, manual, rtol=0, atol=0)
    # it differs from the plain model on asymmetric images, and the model is shared, not copied
    assert not torch.allclose(out, model(x).detach())
    assert tta.model is model and list(tta.parameters()) == list(model.parameters())
    assert tta.state_dict().keys() == {f"model.{k}" for k in model.state_dict()}


class FirstColumn(nn.Module):
    def forward(self, x):
        return x[..., 0].flatten(1)  # [N, C * H]


def test_flip_tta_is_mirror_invariant_and_equals_the_model_on_symmetric_images():
    seed_everything(0)
    model = SmallCNN(width=4).eval()
    tta = FlipTTA(model)
    x = torch.randn(4, 1, 6, 7)  # odd width: the middle column maps to itself
    with torch.no_grad():
        assert torch.equal(tta(x.flip(-1)), tta(x))
        symmetric = (x + x.flip(-1)) / 2
        torch.testing.assert_close(tta(symmetric), model(symmetric), rtol=0, atol=0)
    # the mirror is left-right (the last, width axis): a "model" that reads the first column
    # sees the last one in the mirrored image
    z = torch.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    torch.testing.assert_close(FlipTTA(FirstColumn())(z), (z[..., 0] + z[..., -1]).flatten(1) / 2)


def test_flip_tta_follows_train_and_eval():
    model = SmallCNN(width=4)
    tta = FlipTTA(model).eval()
    assert not model.training and not any(m.training for m in model.modules())
    tta.train()
    assert model.training


def test_flip_tta_rejects_bad_input():
    with pytest.raises(TypeError, match="nn.Module"):
        FlipTTA(lambda x: x)
    tta = FlipTTA(SmallCNN(width=4).eval())
    with pytest.raises(ValueError, match=r"Tensor\[N, C, H, W\].*\(1, 8, 8\)"):
        tta(torch.randn(1, 8, 8))
    with pytest.raises(TypeError, match="x must have a floating dtype, got torch.int64"):
        tta(torch.zeros(1, 1, 8, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        tta([[0.0]])
