"""cvlib.alexnet against its torch/torchvision twins: LRN (also on torch's own module test
database), grouped convolutions, model shapes, parameter and MAC counts, and the crop augmentation."""

from __future__ import annotations

import module_db_parity as DB
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from cvlib.alexnet import (PAPER_LRN, AlexNet, LeNet5, LocalResponseNorm, MiniAlexNet,
                           layer_costs, local_response_norm, random_crop_flip)


def _lrn_paper(a, n=5, k=2.0, alpha=1e-4, beta=0.75):
    """Krizhevsky et al. (2012), Sec. 3.3, one channel at a time: alpha is NOT divided by n."""
    channels = a.shape[1]
    out = torch.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        out[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(dim=1)) ** beta
    return out


# ---------------------------------------------------------------- local response normalization

@pytest.mark.parametrize("name,dtype,training,index,layout",
                         DB.cases(["LocalResponseNorm"]) + DB.cases(["LocalResponseNorm"], "channels_last")
                         + DB.cases(["LocalResponseNorm"], "empty_batch"))
def test_lrn_module_db_sample_matches_torch(name, dtype, training, index, layout):
    """torch's test_modules.py samples (float32/64/16, bfloat16; float16/bfloat16 on 4-d and 5-d
    inputs are skipped: torch's CPU avg_pool3d has no such kernel), as given, channels_last, empty."""
    DB.check_sample(LocalResponseNorm, name, dtype, training, index, layout)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 12])
@pytest.mark.parametrize("shape", [(2, 6, 5, 4), (3, 1, 4), (2, 9, 3, 2, 2)])
def test_lrn_matches_torch_values_and_gradients(dtype, size, shape):
    gen = torch.Generator().manual_seed(size)
    x = (3 * torch.randn(shape, generator=gen)).to(dtype).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    args = dict(alpha=3e-2, beta=0.6, k=1.5)
    ours = local_response_norm(x, size, **args)
    theirs = F.local_response_norm(x_ref, size, **args)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours, theirs, **tol)
    grad = torch.randn(shape, generator=gen).to(dtype)
    ours.backward(grad)
    theirs.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol)


def test_lrn_module_matches_torch_module_with_default_and_paper_constants():
    x = torch.randn(4, 16, 7, 7, generator=torch.Generator().manual_seed(1)) * 40
    torch.testing.assert_close(LocalResponseNorm(5)(x), torch.nn.LocalResponseNorm(5)(x))
    torch.testing.assert_close(LocalResponseNorm(**PAPER_LRN)(x), torch.nn.LocalResponseNorm(**PAPER_LRN)(x))


def test_paper_constants_map_to_torch_alpha_times_n():
    a = 30 * torch.randn(2, 11, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).relu()
    reference = _lrn_paper(a)
    assert PAPER_LRN == {"size": 5, "alpha": 5e-4, "beta": 0.75, "k": 2.0}
    torch.testing.assert_close(local_response_norm(a, **PAPER_LRN), reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.nn.LocalResponseNorm(**PAPER_LRN)(a), reference, rtol=1e-12, atol=1e-12)
    # the classic mix-up (the paper's alpha passed to torch) is a different function
    mixup = torch.nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)(a)
    assert not torch.allclose(mixup, reference, rtol=1e-3)


def test_lrn_edge_channels_use_only_existing_neighbours():
    # one active channel at each edge: its window holds only itself and the channels inside
    x = torch.zeros(1, 6, 1, 1, dtype=torch.float64)
    x[0, 0], x[0, 5] = 10.0, 20.0
    out = local_response_norm(x, 5, alpha=0.5, beta=1.0, k=1.0)
    assert out[0, 0, 0, 0].item() == pytest.approx(10 / (1 + 0.5 / 5 * 100))
    assert out[0, 5, 0, 0].item() == pytest.approx(20 / (1 + 0.5 / 5 * 400))
    # channel 2's window [0, 4] sees channel 0 but not channel 5: output is 0 since x is 0 there,
    # so check the denominator through a constant input instead
    ones = torch.ones(1, 6, 1, 1, dtype=torch.float64)
    out = local_response_norm(ones, 5, alpha=1.0, beta=1.0, k=0.0)[0, :, 0, 0]
    counts = torch.tensor([3, 4, 5, 5, 4, 3], dtype=torch.float64)  # channels in each clipped window
    torch.testing.assert_close(out, 5 / counts)


def test_lrn_does_not_modify_input_and_keeps_dtype():
    x = torch.randn(2, 5, 3, 3, dtype=torch.float64)
    copy = x.clone()
    out = local_response_norm(x, 3)
    assert torch.equal(x, copy) and out.dtype == torch.float64 and out.shape == x.shape


@pytest.mark.parametrize("bad, error, name", [
    ([[[1.0]]], TypeError, "input"),
    (torch.ones(2, 3, 4, dtype=torch.long), TypeError, "input"),
    (torch.ones(2, 3), ValueError, "input"),
])
def test_lrn_rejects_bad_input(bad, error, name):
    with pytest.raises(error, match=name):
        local_response_norm(bad, 5)


@pytest.mark.parametrize("size, error", [(0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError)])
def test_lrn_rejects_bad_size(size, error):
    with pytest.raises(error, match="size"):
        local_response_norm(torch.ones(1, 3, 2, 2), size)


# ------------------------------------------------------------------------------------ models

def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_lenet5_shapes_and_parameter_count():
    model = LeNet5()
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    assert model.features(torch.zeros(1, 1, 32, 32)).shape == (1, 120, 1, 1)
    # C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850
    assert _params(model) == 61_706
    assert list(dict(model.features.named_children())) == ["c1", "act1", "s2", "c3", "act3", "s4", "c5", "act5"]


def test_alexnet_paper_parameter_count_per_layer():
    costs = layer_costs(AlexNet(), (1, 3, 224, 224))
    expected = {  # by hand: out * (in / groups) * k * k + out
        "features.conv1": 96 * 3 * 11 * 11 + 96, "features.conv2": 256 * 48 * 25 + 256,
        "features.conv3": 384 * 256 * 9 + 384, "features.conv4": 384 * 192 * 9 + 384,
        "features.conv5": 256 * 192 * 9 + 256, "classifier.fc6": 9216 * 4096 + 4096,
        "classifier.fc7": 4096 * 4096 + 4096, "classifier.fc8": 4096 * 1000 + 1000,
    }
    assert {r["name"]: r["params"] for r in costs} == expected
    assert sum(expected.values()) == _params(AlexNet()) == 60_965_224
    assert [r["out_shape"][1:] for r in costs[:5]] == [(96, 55, 55), (256, 27, 27), (384, 13, 13),
                                                       (384, 13, 13), (256, 13, 13)]


def test_alexnet_without_groups_and_torchvision_variant():
    assert _params(AlexNet(groups=1)) == 62_378_344
    tv = torchvision.models.alexnet(weights=None)
    assert _params(tv) == 61_100_840
    # our counter agrees with torchvision's model on torchvision's own parameter total
    assert sum(r["params"] for r in layer_costs(tv, (1, 3, 224, 224))) == _params(tv)
    assert AlexNet(num_classes=7).eval()(torch.zeros(2, 3, 224, 224)).shape == (2, 7)


@pytest.mark.parametrize("groups", [1, 2])
def test_layer_costs_macs_match_torch_flop_counter(groups):
    for model, shape in ((AlexNet(groups=groups), (1, 3, 224, 224)),
                         (MiniAlexNet(3, groups=groups), (1, 3, 32, 32)), (LeNet5(), (1, 1, 32, 32))):
        macs = sum(r["macs"] for r in layer_costs(model, shape))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model.eval()(torch.zeros(shape))
        assert counter.get_total_flops() == 2 * macs


def test_grouped_conv_equals_two_half_convolutions_and_halves_the_cost():
    conv = AlexNet().features.conv4  # 384 -> 384, groups=2
    x = torch.randn(2, 384, 13, 13, generator=torch.Generator().manual_seed(0))
    halves = [F.conv2d(x[:, 192 * g:192 * (g + 1)], conv.weight[192 * g:192 * (g + 1)],
                       conv.bias[192 * g:192 * (g + 1)], padding=1) for g in range(2)]
    torch.testing.assert_close(conv(x), torch.cat(halves, 1), rtol=1e-4, atol=1e-4)
    full = AlexNet(groups=1).features.conv4
    assert conv.weight.numel() * 2 == full.weight.numel()


def test_layer_costs_restores_training_mode_and_rejects_bad_shape():
    model = MiniAlexNet()
    model.train()
    layer_costs(model, (1, 1, 8, 8))
    assert model.training
    with pytest.raises(ValueError, match="input_shape"):
        layer_costs(model, (2, 1, 8, 8))


@pytest.mark.parametrize("kwargs", [dict(), dict(pool_kernel=2), dict(lrn=False), dict(groups=1),
                                    dict(activation="tanh"), dict(activation="sigmoid", dropout=0.0)])
def test_mini_alexnet_shapes_on_digits_and_cifar(kwargs):
    assert MiniAlexNet(1, 10, **kwargs)(torch.zeros(4, 1, 8, 8)).shape == (4, 10)
    assert MiniAlexNet(3, 10, **kwargs)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_mini_alexnet_pooling_variants_have_the_same_shapes():
    for size in (8, 32):
        shapes = [[r["out_shape"] for r in layer_costs(MiniAlexNet(1, pool_kernel=k), (1, 1, size, size))]
                  for k in (2, 3)]
        assert shapes[0] == shapes[1]


def test_mini_alexnet_same_seed_same_weights_for_every_activation():
    states = []
    for activation in ("relu", "tanh", "sigmoid"):
        torch.manual_seed(0)
        states.append(MiniAlexNet(activation=activation).state_dict())
    for state in states[1:]:
        assert all(torch.equal(state[k], states[0][k]) for k in state)


@pytest.mark.parametrize("kwargs, name", [(dict(activation="gelu"), "activation"), (dict(pool_kernel=4), "pool_kernel")])
def test_mini_alexnet_rejects_unknown_options(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MiniAlexNet(**kwargs)


# ------------------------------------------------------------------------------ augmentation

def test_random_crop_is_a_shifted_window_of_the_padded_image():
    from torchvision.transforms.v2 import functional as TF

    gen = torch.Generator().manual_seed(0)
    images = torch.randn(16, 3, 6, 5, generator=gen)
    out = random_crop_flip(images, 2, flip=False, fill=-1.0, generator=torch.Generator().manual_seed(3))
    dy, dx = torch.randint(0, 5, (2, 16), generator=torch.Generator().manual_seed(3))
    padded = TF.pad(images, [2], fill=-1.0)
    for i in range(16):
        torch.testing.assert_close(out[i], TF.crop(padded[i], int(dy[i]), int(dx[i]), 6, 5))


def test_random_flip_mirrors_about_half_and_per_channel_fill():
    images = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4).expand(400, -1, -1, -1)
    out = random_crop_flip(images, 0, flip=True, generator=torch.Generator().manual_seed(0))
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert ((out == images).flatten(1).all(1) | mirrored).all()
    assert 150 < int(mirrored.sum()) < 250
    filled = random_crop_flip(torch.zeros(50, 2, 1, 1), 1, flip=False, fill=torch.tensor([5.0, 7.0]),
                              generator=torch.Generator().manual_seed(0))
    assert set(filled[:, 0].unique().tolist()) <= {0.0, 5.0} and set(filled[:, 1].unique().tolist()) <= {0.0, 7.0}


def test_random_crop_flip_is_reproducible_and_rejects_bad_arguments():
    x = torch.randn(8, 1, 8, 8)
    a = random_crop_flip(x, 1, flip=True, generator=torch.Generator().manual_seed(5))
    b = random_crop_flip(x, 1, flip=True, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="images"):
        random_crop_flip(torch.zeros(1, 8, 8), 1, flip=False)
    with pytest.raises(ValueError, match="padding"):
        random_crop_flip(x, -1, flip=False)
