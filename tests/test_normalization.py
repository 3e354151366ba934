"""cvlib.normalization: parity with the torch.nn twins (outputs, gradients, state) on torch's own
module test database and on longer runs, the hand-written BatchNorm backward, differences kept
by design, and bad input."""

from __future__ import annotations

import copy

import module_db_parity as DB
import pytest
import torch
import torch.nn.functional as F
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


@pytest.mark.parametrize("call,error,match", [
    (lambda: N.BatchNorm2d(3)(torch.randn(2, 3, 4)), ValueError, "input must have 4 dims"),
    (lambda: N.BatchNorm2d(3)(torch.randn(2, 4, 2, 2)), ValueError, "num_features=3"),
    (lambda: N.BatchNorm1d(3)(torch.ones(2, 3, dtype=torch.long)), TypeError, "input must have a floating"),
    (lambda: N.BatchNorm2d(0), ValueError, "num_features"),
    (lambda: N.BatchNorm2d(3, momentum=1.5), ValueError, "momentum"),
    (lambda: N.InstanceNorm2d(3)(torch.randn(2, 3, 1, 1)), ValueError, "more than 1 spatial element"),
    (lambda: N.LayerNorm(4)(torch.randn(2, 5)), ValueError, "normalized_shape"),
    (lambda: N.LayerNorm(0), ValueError, "normalized_shape"),
    (lambda: N.GroupNorm(4, 6), ValueError, r"num_channels \(6\) must be divisible by num_groups \(4\)"),
    (lambda: N.GroupNorm(2.0, 6), TypeError, "num_groups must be an int"),
    (lambda: N.BatchNorm2d(3)([[1.0]]), TypeError, "input must be a torch.Tensor"),
    (lambda: N.batch_norm(torch.randn(4, 3), None, None, training=True, eps=0.0), ValueError,
     "eps must be positive during training"),
    (lambda: N.batch_norm(torch.randn(4, 3), torch.zeros(3), torch.ones(3), eps=-1.0), ValueError,
     "eps must be non-negative"),
    (lambda: N.GroupNorm(2, 6)(torch.randn(2, 4, 3)), ValueError, r"\[N, 6, \*\]"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- torch's module test database (torch.testing._internal.common_modules.module_db) ------------

TWINS = {"BatchNorm1d": N.BatchNorm1d, "BatchNorm2d": N.BatchNorm2d, "InstanceNorm1d": N.InstanceNorm1d,
         "InstanceNorm2d": N.InstanceNorm2d, "LayerNorm": N.LayerNorm, "GroupNorm": N.GroupNorm}


def _torch_fails_on_empty(param) -> bool:
    """torch's own InstanceNorm on an empty batch: IndexError with affine weights, NaN written
    into the running statistics when training (test_instance_norm_empty_batch below)."""
    name, _, training, _, _ = param.values
    affine = "-affine-" in param.id or "-affine_not_bias-" in param.id
    tracking = "-tracking_stats-" in param.id
    return name.startswith("InstanceNorm") and (affine or (tracking and training))


def _empty_cases():
    return [p for p in DB.cases(list(TWINS), "empty_batch") if not _torch_fails_on_empty(p)]


@pytest.mark.parametrize("name,dtype,training,index,layout",
                         DB.cases(list(TWINS)) + DB.cases(list(TWINS), "channels_last") + _empty_cases())
def test_module_db_sample_matches_torch(name, dtype, training, index, layout):
    """Every sample torch's test_modules.py runs (float32/64/16, bfloat16, train and eval), as
    given, in channels_last and as an empty batch: outputs, strides, gradients, buffers."""
    DB.check_sample(TWINS[name], name, dtype, training, index, layout)


@pytest.mark.parametrize("name,training,index", DB.error_cases(list(TWINS)))
def test_module_db_error_inputs_raise_what_torch_raises(name, training, index):
    DB.check_error(TWINS[name], name, training, index)


@pytest.mark.parametrize("cls,twin,shape", [(N.InstanceNorm1d, nn.InstanceNorm1d, (0, 3, 15)),
                                            (N.InstanceNorm2d, nn.InstanceNorm2d, (0, 3, 6, 6))])
def test_instance_norm_empty_batch(cls, twin, shape):
    x = torch.randn(shape)
    with pytest.raises(IndexError):  # torch's bug: its affine path indexes the empty batch
        twin(3, affine=True)(x)
    tracking = twin(3, track_running_stats=True)
    tracking(x)
    assert tracking.running_mean.isnan().all()  # torch's bug: the mean of zero instances
    for kwargs in ({"affine": True}, {"track_running_stats": True}):
        ours = cls(3, **kwargs)
        y = ours(x.clone().requires_grad_())
        assert y.shape == shape
        y.sum().backward()
        if ours.running_mean is not None:  # nothing to average: the statistics stay put
            assert torch.equal(ours.running_mean, torch.zeros(3))
            assert torch.equal(ours.running_var, torch.ones(3))


def test_refused_by_design():
    """The differences from torch kept on purpose: torch accepts these, cvlib raises."""
    assert nn.BatchNorm2d(0).weight.shape == (0,) and nn.BatchNorm2d(3, momentum=1.5).momentum == 1.5
    with pytest.raises(ValueError, match="num_features must be >= 1"):
        N.BatchNorm2d(0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        N.BatchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match="num_channels must be >= 1"):
        N.GroupNorm(1, 0)
    x = torch.randn(2, 4, 5, 5)
    with pytest.warns(UserWarning, match="does not match num_features"):
        nn.InstanceNorm2d(3)(x)  # torch normalizes the 4 channels anyway
    with pytest.raises(ValueError, match="num_features=3 channels on dim 1"):
        N.InstanceNorm2d(3)(x)


# --- BatchNormFunction: the hand-written backward ----------------------------------------------

def _elementary_batch_norm(x, weight, bias, eps):
    """The forward as elementary ops; autograd differentiates it (the slow reference)."""
    dims, shape = (0, *range(2, x.ndim)), (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight.view(shape) + bias.view(shape)


def _batch_norm_inputs(shape, dtype=torch.float64):
    gen = torch.Generator().manual_seed(4)
    x = (2 * torch.randn(shape, generator=gen, dtype=dtype) + 0.5).requires_grad_()
    weight = torch.randn(shape[1], generator=gen, dtype=dtype).requires_grad_()
    bias = torch.randn(shape[1], generator=gen, dtype=dtype).requires_grad_()
    return x, weight, bias


@pytest.mark.parametrize("shape", [(4, 3, 2, 2), (5, 2), (3, 2, 4)])
def test_batch_norm_function_gradcheck(shape):
    x, weight, bias = _batch_norm_inputs(shape)
    assert torch.autograd.gradcheck(lambda *t: N.BatchNormFunction.apply(*t, 1e-5)[0], (x, weight, bias))


@pytest.mark.parametrize("shape", [(6, 4, 3, 5), (7, 3), (4, 3, 6)])
def test_batch_norm_function_equals_autograd_through_elementary_ops(shape):
    x, weight, bias = _batch_norm_inputs(shape)
    gen = torch.Generator().manual_seed(5)
    dy = torch.randn(shape, generator=gen, dtype=torch.float64)
    y, mean, var = N.BatchNormFunction.apply(x, weight, bias, 1e-3)
    grads = torch.autograd.grad(y, (x, weight, bias), dy)
    y_ref = _elementary_batch_norm(x, weight, bias, 1e-3)
    grads_ref = torch.autograd.grad(y_ref, (x, weight, bias), dy)
    torch.testing.assert_close(y, y_ref)
    for g, g_ref, what in zip(grads, grads_ref, ("dx", "dgamma", "dbeta")):
        torch.testing.assert_close(g, g_ref, msg=what)
    dims = (0, *range(2, x.ndim))
    torch.testing.assert_close(mean, x.mean(dims).detach())
    torch.testing.assert_close(var, x.var(dims, correction=0).detach())
    assert not mean.requires_grad and not var.requires_grad


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_batch_norm_function_matches_torch_batchnorm2d(memory_format):
    x, weight, bias = _batch_norm_inputs((8, 5, 4, 3), torch.float32)
    x = x.detach().to(memory_format=memory_format).requires_grad_()
    twin = nn.BatchNorm2d(5)
    with torch.no_grad():
        twin.weight.copy_(weight)
        twin.bias.copy_(bias)
    x2 = x.detach().clone().requires_grad_()
    dy = torch.randn(8, 5, 4, 3)
    y, _, _ = N.BatchNormFunction.apply(x, weight, bias, 1e-5)
    y2 = twin(x2)
    assert y.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(y, y2, rtol=1e-5, atol=1e-5)
    y.backward(dy)
    y2.backward(dy)
    for g, g2 in ((x.grad, x2.grad), (weight.grad, twin.weight.grad), (bias.grad, twin.bias.grad)):
        torch.testing.assert_close(g, g2, rtol=1e-4, atol=1e-5)


def test_batch_norm_then_inplace_relu_still_backpropagates():
    """The output is not a tensor the backward needs, so ReLU(inplace=True) after it is safe
    (as after torch's BatchNorm; PlainVGG is built that way)."""
    x = torch.randn(4, 3, 2, 2, requires_grad=True)
    ours, twin = N.BatchNorm2d(3), nn.BatchNorm2d(3)
    F.relu_(ours(x)).sum().backward()
    g = x.grad
    x.grad = None
    F.relu_(twin(x)).sum().backward()
    torch.testing.assert_close(g, x.grad)


@pytest.mark.parametrize("make", [lambda cls: cls.BatchNorm2d(3), lambda cls: cls.LayerNorm([4, 4]),
                                  lambda cls: cls.GroupNorm(3, 3), lambda cls: cls.InstanceNorm2d(3, affine=True)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_float32_module_takes_low_precision_input_like_torch(make, dtype):
    ours, twin = make(N), make(nn)
    DB._randomize(twin, seed=1)
    ours.load_state_dict(twin.state_dict())
    exact = copy.deepcopy(twin).double()
    x = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(0)).to(dtype)
    y, y_twin = ours(x), twin(x)
    assert y.dtype == y_twin.dtype == dtype
    torch.testing.assert_close(y, exact(x.double()).to(dtype))  # computed in float32, rounded once
    torch.testing.assert_close(ours.state_dict(), twin.state_dict())
