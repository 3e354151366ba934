"""cvlib.normalization: parity with the torch.nn twins (outputs, gradients, state), whitening,
max-norm, PlainVGG, and bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cvlib import normalization as N

DTYPES = [torch.float32, torch.float64]


def _tol(dtype):
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-10}


def _pair(ours_cls, torch_cls, dtype, *args, **kwargs):
    """The same layer twice, ours and torch's, torch's random state loaded into ours."""
    theirs = torch_cls(*args, **kwargs, dtype=dtype)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
    ours = ours_cls(*args, **kwargs, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _check_steps(ours, theirs, shapes, dtype, *, train_steps=3, channels_last=False):
    """Train steps then eval steps on the same inputs; outputs, grads and state must agree."""
    gen = torch.Generator().manual_seed(11)
    for step, shape in enumerate(shapes):
        training = step < train_steps
        ours.train(training)
        theirs.train(training)
        x = (3 * torch.randn(shape, generator=gen, dtype=dtype) + 1.5)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        try:
            y2 = theirs(x2)
        except ValueError as exc:  # e.g. batch statistics of one value: ours must refuse too
            with pytest.raises(ValueError, match=str(exc).split(",")[0]):
                ours(x1)
            continue
        y1 = ours(x1)
        torch.testing.assert_close(y1, y2, **_tol(dtype))
        w = torch.randn(shape, generator=gen, dtype=dtype)
        (y1 * w).sum().backward()
        (y2 * w).sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad, **_tol(dtype))
        for (name, p1), p2 in zip(ours.named_parameters(), theirs.parameters()):
            torch.testing.assert_close(p1.grad, p2.grad, **_tol(dtype), msg=f"grad of {name}")
            p1.grad, p2.grad = None, None
        s1, s2 = ours.state_dict(), theirs.state_dict()
        assert list(s1) == list(s2)
        for key in s1:
            assert s1[key].dtype == s2[key].dtype and s1[key].shape == s2[key].shape, key
            torch.testing.assert_close(s1[key], s2[key], **_tol(dtype), msg=f"state {key}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, 0.4, None])
@pytest.mark.parametrize("affine,track", [(True, True), (False, True), (True, False)])
def test_batchnorm2d_matches_torch(dtype, momentum, affine, track):
    ours, theirs = _pair(N.BatchNorm2d, nn.BatchNorm2d, dtype, 5, momentum=momentum, affine=affine,
                         track_running_stats=track)
    _check_steps(ours, theirs, [(4, 5, 3, 3), (2, 5, 4, 2), (7, 5, 1, 1), (3, 5, 2, 2), (1, 5, 1, 1)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm2d_channels_last(dtype):
    ours, theirs = _pair(N.BatchNorm2d, nn.BatchNorm2d, dtype, 6)
    _check_steps(ours, theirs, [(3, 6, 4, 5), (2, 6, 3, 3), (2, 6, 3, 3)], dtype, train_steps=2,
                 channels_last=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm1d_matches_torch(dtype, momentum):
    ours, theirs = _pair(N.BatchNorm1d, nn.BatchNorm1d, dtype, 4, momentum=momentum)
    _check_steps(ours, theirs, [(8, 4), (3, 4, 5), (2, 4), (5, 4, 2), (1, 4)], dtype)


def test_cumulative_average_is_the_plain_mean_of_batch_statistics():
    bn = N.BatchNorm2d(2, momentum=None, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(3, 2, 2, 2, generator=gen, dtype=torch.float64) + i for i in range(4)]
    for x in batches:
        bn(x)
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in batches]).mean(0)
    variances = torch.stack([x.var(dim=(0, 2, 3)) for x in batches]).mean(0)  # unbiased
    torch.testing.assert_close(bn.running_mean, means)
    torch.testing.assert_close(bn.running_var, variances)
    assert bn.num_batches_tracked.item() == 4


def test_state_dict_loads_both_ways():
    theirs = nn.BatchNorm2d(3)
    theirs(torch.randn(4, 3, 2, 2))
    ours = N.BatchNorm2d(3)
    ours.load_state_dict(theirs.state_dict())
    ours(torch.randn(4, 3, 2, 2) * 2)
    back = nn.BatchNorm2d(3)
    back.load_state_dict(ours.state_dict())
    assert back.num_batches_tracked.item() == 2
    torch.testing.assert_close(back.running_var, ours.running_var)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), N.BatchNorm2d(3))
    assert set(model.state_dict()) == set(nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3)).state_dict())


@pytest.mark.parametrize("cls,shape", [(N.BatchNorm2d, (1, 3, 1, 1)), (N.BatchNorm1d, (1, 3))])
def test_one_value_per_channel_is_an_error_in_training_only(cls, shape):
    ours = cls(3)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        ours(torch.randn(shape))
    assert ours.num_batches_tracked.item() == 0
    ours.eval()
    assert ours(torch.randn(shape)).shape == shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (True, True), (False, True)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_instancenorm2d_matches_torch(dtype, affine, track, momentum):
    ours, theirs = _pair(N.InstanceNorm2d, nn.InstanceNorm2d, dtype, 3, affine=affine,
                         track_running_stats=track, momentum=momentum)
    _check_steps(ours, theirs, [(2, 3, 4, 4), (3, 3, 2, 5), (2, 3, 3, 3), (1, 3, 1, 1)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_instancenorm1d_matches_torch(dtype):
    ours, theirs = _pair(N.InstanceNorm1d, nn.InstanceNorm1d, dtype, 4, affine=True, track_running_stats=True)
    _check_steps(ours, theirs, [(2, 4, 6), (3, 4, 2), (2, 4, 5)], dtype, train_steps=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,normalized", [((4, 10), 10), ((2, 3, 4, 5), (4, 5)), ((2, 3, 4), (2, 3, 4))])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, True)])
def test_layernorm_matches_torch(dtype, shape, normalized, affine, bias):
    ours, theirs = _pair(N.LayerNorm, nn.LayerNorm, dtype, normalized, elementwise_affine=affine, bias=bias)
    _check_steps(ours, theirs, [shape, shape], dtype, train_steps=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups,affine", [(1, True), (3, True), (6, False), (2, True)])
def test_groupnorm_matches_torch(dtype, groups, affine):
    ours, theirs = _pair(N.GroupNorm, nn.GroupNorm, dtype, groups, 6, affine=affine)
    _check_steps(ours, theirs, [(2, 6, 3, 3), (1, 6, 5), (3, 6, 2, 2, 2)], dtype, train_steps=2)


def test_functional_batch_norm_matches_torch():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 4, 3, 3, generator=gen, dtype=torch.float64)
    weight, bias = torch.randn(4, generator=gen, dtype=torch.float64), torch.randn(4, generator=gen, dtype=torch.float64)
    rm1, rv1 = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    rm2, rv2 = rm1.clone(), rv1.clone()
    y1 = N.batch_norm(x, rm1, rv1, weight, bias, True, 0.3, 1e-3)
    y2 = torch.nn.functional.batch_norm(x, rm2, rv2, weight, bias, True, 0.3, 1e-3)
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close((rm1, rv1), (rm2, rv2))
    torch.testing.assert_close(N.batch_norm(x, rm1, rv1, weight, bias),
                               torch.nn.functional.batch_norm(x, rm2, rv2, weight, bias))
    with pytest.raises(ValueError, match="running_mean and running_var are required"):
        N.batch_norm(x, None, None)


@pytest.mark.parametrize("whiten", [N.pca_whitening, N.zca_whitening])
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
    _, w_pca = N.pca_whitening(x, eps=1e-3)
    _, w_zca = N.zca_whitening(x, eps=1e-3)
    torch.testing.assert_close(w_zca, w_zca.T)
    rotation = w_zca @ torch.linalg.inv(w_pca)  # W_zca = R W_pca with R orthogonal
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(4, dtype=torch.float64), atol=1e-8, rtol=0)
    # eps shrinks variance lambda / (lambda + eps) below 1, never above
    z = (x - x.mean(0)) @ w_pca.T
    var = z.var(0, correction=0)
    assert (var < 1).all() and (var > 0.9).all()


def test_max_norm_matches_torch_renorm():
    gen = torch.Generator().manual_seed(2)
    for shape in [(6, 4), (5, 3, 3, 3)]:
        w = torch.randn(shape, generator=gen, dtype=torch.float64) * torch.linspace(0.1, 3, shape[0], dtype=torch.float64).view(-1, *(1,) * (len(shape) - 1))
        expected = torch.renorm(w, p=2, dim=0, maxnorm=1.5)
        out = N.max_norm_(w, 1.5)
        assert out is w
        torch.testing.assert_close(w, expected, rtol=1e-6, atol=1e-7)
        assert (w.flatten(1).norm(dim=1) <= 1.5 + 1e-9).all()


def test_plain_vgg_shapes_and_norm_layer():
    plain, bn = N.PlainVGG(), N.PlainVGG(norm_layer=nn.BatchNorm2d)
    assert sum(isinstance(m, nn.Conv2d) for m in plain.modules()) == 10
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 10
    assert all(m.bias is None for m in bn.modules() if isinstance(m, nn.Conv2d))
    assert plain(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    ours = N.PlainVGG(norm_layer=N.BatchNorm2d)
    ours.load_state_dict(bn.state_dict())
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(ours(x), bn(x), rtol=1e-4, atol=1e-5)
    assert N.PlainVGG(cfg=(8, "M", 8, "M"), in_channels=3)(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="cfg entries"):
        N.PlainVGG(cfg=(8, "X"))


@pytest.mark.parametrize("call,error,match", [
    (lambda: N.BatchNorm2d(3)(torch.randn(2, 3, 4)), ValueError, "input must have 4 dims"),
    (lambda: N.BatchNorm2d(3)(torch.randn(2, 4, 2, 2)), ValueError, "num_features=3"),
    (lambda: N.BatchNorm1d(3)(torch.ones(2, 3, dtype=torch.long)), TypeError, "input must have a floating"),
    (lambda: N.BatchNorm2d(0), ValueError, "num_features"),
    (lambda: N.BatchNorm2d(3, momentum=1.5), ValueError, "momentum"),
    (lambda: N.InstanceNorm2d(3)(torch.randn(2, 3, 1, 1)), ValueError, "more than 1 spatial element"),
    (lambda: N.LayerNorm(4)(torch.randn(2, 5)), ValueError, "normalized_shape"),
    (lambda: N.LayerNorm(0), ValueError, "normalized_shape"),
    (lambda: N.GroupNorm(4, 6), ValueError, "divisible"),
    (lambda: N.GroupNorm(2, 6)(torch.randn(2, 4, 3)), ValueError, r"\[N, 6, \*\]"),
    (lambda: N.pca_whitening(torch.randn(5)), ValueError, r"x must have shape \[N, D\]"),
    (lambda: N.zca_whitening([[1.0]]), TypeError, "x must be a torch.Tensor"),
    (lambda: N.max_norm_(torch.randn(3), 1.0), ValueError, "weight must have shape"),
    (lambda: N.max_norm_(torch.randn(3, 3), 0.0), ValueError, "max_norm"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
