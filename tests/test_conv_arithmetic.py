"""cvlib.conv_arithmetic: every formula checked against what torch builds and computes.

Output sizes against forward passes over a grid of settings (torch's errors included), parameter
counts against ``sum(p.numel() ...)``, receptive fields against the input pixels that get a
non-zero gradient from one output unit, and the layer table against torchvision's AlexNet/VGG.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cvlib.conv_arithmetic import (RF, bn_buffers, bn_params, conv_output_size, conv_params,
                                   layer_table, linear_params, pool_output_size, receptive_field,
                                   rf_step, summary)


def _torch_length(fn, n: int) -> int | None:
    """Output height of ``fn`` on a [1, 1, n, 1] input, or None where torch refuses."""
    try:
        return fn(torch.zeros(1, 1, n, 1)).shape[2]
    except RuntimeError:
        return None


def _ours(fn, *args, **kwargs) -> int | None:
    try:
        return fn(*args, **kwargs)
    except ValueError:
        return None


def test_conv_output_size_matches_torch_on_a_grid():
    checked = refused = 0
    for n, k, s, p, d in itertools.product(range(1, 13), range(1, 6), range(1, 4), range(3), range(1, 3)):
        weight = torch.zeros(1, 1, k, 1)
        expected = _torch_length(lambda x: F.conv2d(x, weight, stride=(s, 1), padding=(p, 0),
                                                    dilation=(d, 1)), n)
        assert _ours(conv_output_size, n, k, s, p, d) == expected, (n, k, s, p, d)
        checked, refused = checked + 1, refused + (expected is None)
    assert checked == 1080 and 0 < refused < checked  # the grid does reach torch's error


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv_string_padding_matches_torch(padding):
    for n, k, d in itertools.product(range(1, 9), range(1, 6), range(1, 3)):
        expected = _torch_length(lambda x: F.conv2d(x, torch.zeros(1, 1, k, 1), padding=padding,
                                                    dilation=(d, 1)), n)
        assert _ours(conv_output_size, n, k, 1, padding, d) == expected, (padding, n, k, d)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_size_matches_torch_on_a_grid(kind, ceil_mode):
    dilations = range(1, 3) if kind == "max" else [1]  # AvgPool2d has no dilation
    dropped_last = 0
    for n, k, s, p, d in itertools.product(range(1, 12), range(1, 5), range(1, 4), range(3), dilations):
        if kind == "max":
            pool = nn.MaxPool2d((k, 1), (s, 1), (p, 0), (d, 1), ceil_mode=ceil_mode)
        else:
            pool = nn.AvgPool2d((k, 1), (s, 1), (p, 0), ceil_mode=ceil_mode)
        expected = _torch_length(pool, n)
        got = _ours(pool_output_size, n, k, s, p, d, ceil_mode)
        assert got == expected, (kind, n, k, s, p, d, ceil_mode)
        # count the cases where ceil mode's "last window starts in the right padding" rule bites
        room = n + 2 * p - d * (k - 1) - 1
        dropped_last += ceil_mode and expected is not None and expected == -(-room // s)
    assert (dropped_last > 0) == ceil_mode


def test_pool_default_stride_is_the_kernel():
    assert pool_output_size(224, 2) == 112 == nn.MaxPool2d(2)(torch.zeros(1, 1, 224, 224)).shape[-1]
    assert pool_output_size(7, 2, ceil_mode=True) == 4


def test_the_chapter_numbers():
    assert conv_output_size(224, 11, 4, 2) == 55      # torchvision's AlexNet conv1
    assert conv_output_size(227, 11, 4, 0) == 55      # the 227 crop, no padding
    assert (224 - 11) / 4 + 1 == 54.25                # the paper's 224 without padding
    assert conv_params(3, 96, 11) == 34_944 and conv_params(3, 96, 11, bias=False) == 34_848
    assert pool_output_size(1, 2, 2, ceil_mode=True) == 1  # the seed network's last pool ...
    with pytest.raises(ValueError, match="empty"):
        pool_output_size(1, 2, 2)                      # ... which floor mode refuses


@pytest.mark.parametrize("cin,cout,k,groups,bias", [
    (3, 96, 11, 1, True), (3, 96, 11, 1, False), (48, 256, 5, 1, True), (96, 256, 5, 2, True),
    (32, 32, 3, 32, False), (32, 64, (3, 1), 32, True), (12, 18, (1, 5), 3, True), (1, 1, 1, 1, False),
])
def test_conv_params_match_torch(cin, cout, k, groups, bias):
    layer = nn.Conv2d(cin, cout, k, groups=groups, bias=bias)
    assert conv_params(cin, cout, k, groups, bias) == sum(p.numel() for p in layer.parameters())


@pytest.mark.parametrize("fin,fout,bias", [(50, 10, True), (9216, 4096, True), (7, 3, False), (1, 1, True)])
def test_linear_params_match_torch(fin, fout, bias):
    assert linear_params(fin, fout, bias) == sum(p.numel() for p in nn.Linear(fin, fout, bias).parameters())


@pytest.mark.parametrize("bn", [nn.BatchNorm2d, nn.BatchNorm1d])
@pytest.mark.parametrize("c,affine,track", [(20, True, True), (50, False, True), (7, True, False)])
def test_bn_params_and_buffers_match_torch(bn, c, affine, track):
    layer = bn(c, affine=affine, track_running_stats=track)
    assert bn_params(c, affine) == sum(p.numel() for p in layer.parameters())
    assert bn_buffers(c, track) == sum(b.numel() for b in layer.buffers())
    assert bn_params(c, affine) + bn_buffers(c, track) == sum(t.numel() for t in layer.state_dict().values())


def test_receptive_field_recurrence_by_hand():
    # three 3x3 stride-1 convs see 7x7, like one 7x7 (VGG's argument, Simonyan and Zisserman 2015)
    assert [r.size for r in receptive_field([(3,), (3,), (3,)])] == [3, 5, 7]
    # AlexNet's conv1 + pool1: 11 + (3-1)*4 = 19, jump 8, start at the left padding
    assert receptive_field([(11, 4, 2), (3, 2)]) == [RF(11, 4, -2), RF(19, 8, -2)]
    assert rf_step(RF(5, 2, -1), 3, 1, 1, 2) == RF(5 + 2 * 2 * 2, 2, -3)  # dilation 2 after jump 2


def _random_stack(rng: random.Random) -> nn.Sequential:
    layers = []
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.6:
            k = (rng.randint(1, 5), rng.randint(1, 5))
            s = (rng.randint(1, 2), rng.randint(1, 3))
            d = (rng.randint(1, 2), rng.randint(1, 2))
            same = rng.random() < 0.15 and s == (1, 1)
            padding = "same" if same else (rng.randint(0, 2), rng.randint(0, 2))
            layers += [nn.Conv2d(1, 1, k, s, padding, d), nn.ReLU()]
        else:
            k = (rng.randint(1, 4), rng.randint(1, 4))
            layers.append(nn.AvgPool2d(k, (rng.randint(1, 3), rng.randint(1, 3)),
                                       (rng.randint(0, k[0] // 2), rng.randint(0, k[1] // 2)),
                                       ceil_mode=rng.random() < 0.5))
    return nn.Sequential(*layers)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_receptive_field_matches_input_gradients_on_random_stacks():
    """Input pixels with a non-zero gradient from one output row (column), with all-positive
    weights so nothing cancels, lie inside the analytic window and reach both of its ends
    whenever the window lies inside the image."""
    rng, stacks, exact_ends = random.Random(3), 0, 0
    while stacks < 40:
        model, size = _random_stack(rng), (rng.randint(9, 40), rng.randint(9, 40))
        try:
            rows = layer_table(model, (1, *size))
        except ValueError:  # some layer's output would be empty: torch must refuse too
            with pytest.raises(RuntimeError):
                model(torch.zeros(1, 1, *size))
            continue
        for m in model:
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.weight, 1.0)
                nn.init.zeros_(m.bias)
        x = torch.ones(1, 1, *size, requires_grad=True)
        out = model(x)
        assert tuple(out.shape[1:]) == rows[-1].shape
        # Unit (i, j) uses the pixels used_h(i) x used_w(j). If no unit sees any pixel (every
        # column's window holds only padding, say), rows cannot be told apart: skip the stack.
        if not out.sum() > 0:
            continue
        stacks += 1
        for axis in (0, 1):
            rf = rows[-1].rf[axis]
            for i in range(out.shape[2 + axis]):
                (grad,) = torch.autograd.grad(out.select(2 + axis, i).sum(), x, retain_graph=True)
                other = 1 - axis  # sum out the other spatial axis
                used = (grad[0, 0].abs().sum(dim=other) > 0).nonzero().flatten().tolist()
                first, last = rf.start + i * rf.jump, rf.start + i * rf.jump + rf.size - 1
                # (a unit whose window holds only padding, or only holes, uses no pixel)
                assert all(first <= u <= last for u in used), (model, size, axis, i)
                if first >= 0 and last < size[axis]:
                    assert used[:1] + used[-1:] == [first, last], (model, size, axis, i, used)
                    exact_ends += 1
    assert exact_ends > 100


def test_holes_inside_the_receptive_field():
    """A stride-2 1x1 conv then a 3x3 conv: the window spans 5 rows but uses only 3."""
    model = nn.Sequential(nn.Conv2d(1, 1, 1, 2, bias=False), nn.Conv2d(1, 1, 3, bias=False))
    for m in model:
        nn.init.constant_(m.weight, 1.0)
    x = torch.ones(1, 1, 9, 9, requires_grad=True)
    model(x)[0, 0, 0, 0].backward()
    assert layer_table(model, (1, 9, 9))[-1].rf[0] == RF(5, 2, 0)
    assert (x.grad[0, 0, :, 0] > 0).nonzero().flatten().tolist() == [0, 2, 4]


def _torch_rows(model: nn.Module, x: torch.Tensor) -> list[tuple[tuple[int, ...], int]]:
    """(output shape without batch, parameter count) of every leaf, from a real forward pass."""
    rows, hooks = [], []
    for m in model.modules():
        if not list(m.children()):
            params = sum(p.numel() for p in m.parameters())
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, params=params: rows.append((tuple(out.shape[1:]), params))))
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return rows


def _as_sequential(model: nn.Module) -> nn.Sequential:
    """torchvision's AlexNet/VGG forward is features -> avgpool -> flatten -> classifier."""
    return nn.Sequential(OrderedDict(features=model.features, avgpool=model.avgpool,
                                     flatten=nn.Flatten(), classifier=model.classifier))


@functools.lru_cache(maxsize=None)
def _torchvision(name: str) -> nn.Sequential:
    torch.manual_seed(0)
    return _as_sequential(getattr(torchvision.models, name)(weights=None))


@pytest.mark.parametrize("name,size", [("alexnet", 224), ("alexnet", 227), ("alexnet", 63),
                                       ("vgg11_bn", 64), ("vgg11_bn", 224)])
def test_layer_table_matches_torchvision_models(name, size):
    model = _torchvision(name)
    table = layer_table(model, (3, size, size))
    assert [(r.shape, r.params) for r in table] == _torch_rows(model, torch.zeros(1, 3, size, size))
    assert sum(r.params for r in table) == sum(p.numel() for p in model.parameters())
    assert summary(model, (3, size, size)).splitlines()[-1].endswith(f"{sum(r.params for r in table):,}")


def test_alexnet_receptive_fields():
    rows = {r.name: r for r in layer_table(_torchvision("alexnet"), (3, 224, 224))}
    assert rows["features.0"].rf == (RF(11, 4, -2),) * 2
    assert rows["features.12"].rf == (RF(195, 32, -66),) * 2
    assert rows["avgpool"].rf == rows["features.12"].rf  # 6x6 -> 6x6 is the identity
    assert rows["flatten"].rf is None


def test_uneven_adaptive_pool_has_no_single_receptive_field():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d((3, None)))
    (conv, pool) = layer_table(model, (1, 9, 12))
    assert pool.shape == (2, 3, 10) and pool.rf is None
    assert layer_table(nn.Sequential(nn.AdaptiveMaxPool2d(1)), (4, 6, 6))[0].rf == (RF(6, 6, 0),) * 2


def test_maxpool_and_avgpool_have_the_same_geometry():
    a = layer_table(nn.Sequential(nn.MaxPool2d(3, 2, 1, ceil_mode=True)), (1, 10, 10))
    b = layer_table(nn.Sequential(nn.AvgPool2d(3, 2, 1, ceil_mode=True)), (1, 10, 10))
    assert [(r.shape, r.rf) for r in a] == [(r.shape, r.rf) for r in b]


@pytest.mark.parametrize("call,error,match", [
    (lambda: conv_output_size(5, 7), ValueError, "empty"),
    (lambda: conv_output_size(5, 3, dilation=3), ValueError, "dilated extent 7"),
    (lambda: conv_output_size(0, 3), ValueError, "size must be >= 1"),
    (lambda: conv_output_size(8, 3, 0), ValueError, "stride must be >= 1"),
    (lambda: conv_output_size(8, 3, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: conv_output_size(8, 3, 2, "same"), ValueError, "stride=1"),
    (lambda: conv_output_size(8.0, 3), TypeError, "size must be an int"),
    (lambda: conv_output_size(8, True), TypeError, "kernel_size must be an int"),
    (lambda: pool_output_size(8, 2, padding=2), ValueError, "padding=2 must be at most half"),
    (lambda: pool_output_size(1, 3), ValueError, "empty"),
    (lambda: pool_output_size(8, 2, ceil_mode=1), TypeError, "ceil_mode"),
    (lambda: conv_params(3, 8, 3, groups=2), ValueError, "divisible by groups=2"),
    (lambda: conv_params(4, 6, (3, 3, 3)), ValueError, "kernel_size must be an int or a pair"),
    (lambda: conv_params(4, 6, 3, bias=1), TypeError, "bias must be a bool"),
    (lambda: linear_params(0, 3), ValueError, "in_features must be >= 1"),
    (lambda: bn_params(4, affine="yes"), TypeError, "affine"),
    (lambda: receptive_field([(3, 1, 0, 1, 9)]), ValueError, r"layers\[0\]"),
    (lambda: layer_table(nn.ModuleList([nn.Conv2d(3, 4, 3)]), (3, 8, 8)), TypeError, "nn.Sequential"),
    (lambda: layer_table(nn.Sequential(nn.TransformerEncoderLayer(4, 1)), (3, 8, 8)), TypeError,
     "0 is a TransformerEncoderLayer with sub-modules"),
    (lambda: layer_table(nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3)), nn.LSTM(2, 2)), (3, 8, 8)),
     TypeError, "1: layer_table does not know LSTM"),
    (lambda: layer_table(nn.Sequential(nn.Conv2d(3, 4, 3)), (1, 8, 8)), ValueError,
     "expects 3 input channels"),
    (lambda: layer_table(nn.Sequential(nn.Conv2d(3, 4, 3)), (3, 8)), ValueError, "input_shape"),
    (lambda: layer_table(nn.Sequential(nn.Conv2d(3, 4, 5), nn.MaxPool2d(2)), (3, 5, 5)), ValueError, "empty"),
    (lambda: layer_table(nn.Sequential(nn.Flatten(), nn.Linear(10, 2)), (3, 2, 2)), ValueError,
     "expects 10 input features"),
    (lambda: layer_table(nn.Sequential(nn.Flatten(), nn.BatchNorm2d(12)), (3, 2, 2)), ValueError,
     "cannot take an input"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_layer_table_refuses_what_torch_refuses():
    model = nn.Sequential(nn.Conv2d(3, 4, 5), nn.MaxPool2d(2))
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 3, 5, 5))  # 5x5 conv leaves 1x1; a 2x2 pool of it is empty
    model[1].ceil_mode = True
    out = model(torch.zeros(1, 3, 5, 5))
    assert layer_table(model, (3, 5, 5))[-1].shape == tuple(out.shape[1:]) == (4, 1, 1)
