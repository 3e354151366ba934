"""cvlib.activations: values and gradients against torch (float32, float64, kinks, +-1e4,
+-inf), torch's own module test database (float16, bfloat16, channels_last, empty batches too),
numerical stability of softmax/log-softmax/logsumexp, softmax's hand-written backward, modules,
differences kept by design, and bad input."""

from __future__ import annotations

import math

import module_db_parity as DB
import pytest
import torch
import torch.nn.functional as F

from cvlib import activations as A

INF = float("inf")
KINKS = [-6.0, -3.0, -2.5, -1.0, -0.0, 0.0, 1.0, 2.5, 3.0, 6.0, 20.0]
EXTREMES = [-1e4, -100.0, -90.0, -30.0, -20.5, 20.5, 30.0, 90.0, 100.0, 1e4]

# name: (ours, torch's twin), elementwise functions of one tensor
PAIRS = {
    "sigmoid": (A.sigmoid, torch.sigmoid),
    "hardsigmoid": (A.hardsigmoid, F.hardsigmoid),
    "softplus": (A.softplus, F.softplus),
    "softplus_beta2_thr5": (lambda x: A.softplus(x, 2.0, 5.0), lambda x: F.softplus(x, 2.0, 5.0)),
    "tanh": (A.tanh, torch.tanh),
    "relu": (A.relu, F.relu),
    "relu6": (A.relu6, F.relu6),
    "leaky_relu": (A.leaky_relu, F.leaky_relu),
    "leaky_relu_0.3": (lambda x: A.leaky_relu(x, 0.3), lambda x: F.leaky_relu(x, 0.3)),
    "prelu": (lambda x: A.prelu(x, torch.tensor([0.25], dtype=x.dtype, device=x.device)),
              lambda x: F.prelu(x, torch.tensor([0.25], dtype=x.dtype, device=x.device))),
    "elu": (A.elu, F.elu),
    "elu_0.5": (lambda x: A.elu(x, 0.5), lambda x: F.elu(x, 0.5)),
    "selu": (A.selu, F.selu),
    "silu": (A.silu, F.silu),
    "swish_beta1": (lambda x: A.swish(x, 1.0), F.silu),
    "hardswish": (A.hardswish, F.hardswish),
    "mish": (A.mish, F.mish),
    "gelu": (A.gelu, F.gelu),
    "gelu_tanh": (lambda x: A.gelu(x, "tanh"), lambda x: F.gelu(x, approximate="tanh")),
}
DTYPES = [torch.float32, torch.float64]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def grid(dtype, extra=()):
    gen = torch.Generator().manual_seed(7)
    random = 8 * torch.randn(200, generator=gen, dtype=torch.float64)
    return torch.cat([random, torch.tensor([*KINKS, *EXTREMES, *extra], dtype=torch.float64)]).to(dtype)


def value_and_grad(fn, x):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    weights = torch.linspace(-1.5, 2.0, y.numel(), dtype=x.dtype, device=x.device).reshape(y.shape)
    (grad,) = torch.autograd.grad((y * weights).sum(), x)
    return y.detach(), grad  # the same weights for ours and torch's: a stricter test than ones


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", PAIRS)
def test_values_and_gradients_match_torch(name, dtype, device):
    ours, theirs = PAIRS[name]
    x = grid(dtype).to(device)
    y, g = value_and_grad(ours, x)
    y_ref, g_ref = value_and_grad(theirs, x)
    assert y.dtype == dtype and y.shape == x.shape and y.device == x.device
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(g, g_ref)
    assert torch.isfinite(g).all(), f"{name}: non-finite gradient at a finite input"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", PAIRS)
def test_infinities_and_nan_values_match_torch(name, dtype):
    ours, theirs = PAIRS[name]
    x = torch.tensor([-INF, INF, float("nan")] * 6, dtype=dtype)  # vectorised and tail paths
    # Torch's own float32 GELU at +inf depends on the CPU's vector code (inf on some machines,
    # NaN on AVX-512 ones), so the reference is torch's float64 result, cast back.
    y, y_ref = ours(x), theirs(x.double()).to(dtype)
    torch.testing.assert_close(y, y_ref, equal_nan=True)
    assert y[2::3].isnan().all(), f"{name}: NaN must propagate"


@pytest.mark.parametrize("name", PAIRS)
def test_gradcheck_float64(name):
    ours, _ = PAIRS[name]
    gen = torch.Generator().manual_seed(3)
    x = (4 * torch.randn(40, generator=gen, dtype=torch.float64))
    x = x[(x.abs() > 0.05) & ((x.abs() - 3).abs() > 0.05) & ((x - 6).abs() > 0.05)]  # away from kinks
    assert torch.autograd.gradcheck(ours, (x.requires_grad_(True),))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", PAIRS)
def test_next_to_the_kinks_matches_torch(name, dtype):
    # the neighbouring floats of each kink, where a rounded x + 3 or x - 6 would move the kink
    kinks = torch.tensor([-3.0, 0.0, 3.0, 6.0, 20.0], dtype=dtype)
    up, down = torch.nextafter(kinks, kinks + 1), torch.nextafter(kinks, kinks - 1)
    x = torch.cat([down, kinks, up, torch.nextafter(up, up + 1), torch.nextafter(down, down - 1)])
    ours, theirs = PAIRS[name]
    for f, g in ((ours, theirs), (lambda t: A.derivative(ours, t), lambda t: A.derivative(theirs, t))):
        torch.testing.assert_close(f(x), g(x))


def test_gradients_at_the_kinks_are_torchs_conventions():
    x = torch.tensor([0.0])
    d = lambda fn, v: A.derivative(fn, torch.tensor([v])).item()  # noqa: E731
    assert d(A.relu, 0.0) == 0.0
    assert d(A.relu6, 0.0) == 0.0 and d(A.relu6, 6.0) == 0.0
    assert d(A.hardsigmoid, -3.0) == 0.0 and d(A.hardsigmoid, 3.0) == 0.0
    assert d(A.hardswish, -3.0) == 0.0 and d(A.hardswish, 3.0) == 1.0
    assert d(A.leaky_relu, 0.0) == pytest.approx(0.01)
    assert d(A.elu, 0.0) == 1.0 and d(lambda t: A.elu(t, 0.5), 0.0) == 0.5
    assert d(A.selu, 0.0) == pytest.approx(A.SELU_SCALE * A.SELU_ALPHA, rel=1e-6)
    assert d(A.tanh, 0.0) == 1.0 and d(A.sigmoid, 0.0) == 0.25 and d(A.softplus, 0.0) == 0.5
    assert A.derivative(A.relu, x).shape == x.shape


def test_selu_constants_are_torchs():
    x = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    by_hand = A.SELU_SCALE * torch.where(x > 0, x, A.SELU_ALPHA * torch.expm1(x))
    torch.testing.assert_close(F.selu(x), by_hand, rtol=0, atol=1e-15)


def test_tiny_inputs_keep_relative_precision():
    x = torch.tensor([1e-10, -1e-20, 1e-30])
    torch.testing.assert_close(A.tanh(x), x, rtol=1e-6, atol=0)
    tail = torch.tensor([-80.0, -100.0], dtype=torch.float64)
    torch.testing.assert_close(A.sigmoid(tail), torch.sigmoid(tail), rtol=1e-12, atol=0)


def test_swish_limits_and_identities():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    torch.testing.assert_close(A.swish(x, 0.0), x / 2)
    torch.testing.assert_close(A.swish(x, 50.0), F.relu(x), atol=0.01, rtol=0)
    torch.testing.assert_close(A.hardswish(x), x * A.hardsigmoid(x))
    torch.testing.assert_close(A.mish(x), x * torch.tanh(torch.log1p(torch.exp(x))))
    torch.testing.assert_close(A.relu6(x), torch.clamp(F.relu(x), 0, 6))


def test_softplus_threshold_switch():
    x = torch.tensor([20.0, 20.5], dtype=torch.float64)
    exact = x + torch.log1p(torch.exp(-x))
    assert A.softplus(x)[1] == 20.5  # beyond the threshold: exactly x, like torch
    assert A.softplus(x)[0] == exact[0]  # at the threshold: still the formula
    assert F.softplus(x)[1] == A.softplus(x)[1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_family_matches_torch(dtype, dim):
    gen = torch.Generator().manual_seed(dim + 5)
    x = (30 * torch.randn(6, 7, 3, generator=gen)).to(dtype)
    x[0, 0, 0], x[1, 2, 1], x[2, 3, 2] = 1e4, -1e4, -INF  # huge logits and a masked one
    family = ((A.softmax, F.softmax), (A.log_softmax, F.log_softmax), (A.logsumexp, torch.logsumexp))
    for ours, theirs in family:
        y, g = value_and_grad(lambda t: ours(t, dim), x)
        y_ref, g_ref = value_and_grad(lambda t: theirs(t, dim), x)
        torch.testing.assert_close(y, y_ref)
        torch.testing.assert_close(g, g_ref)
        assert not g.isnan().any()


def test_softmax_family_gradcheck():
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(3, 5, generator=gen, dtype=torch.float64).requires_grad_(True)
    for fn in (A.softmax, A.log_softmax, A.logsumexp):
        assert torch.autograd.gradcheck(lambda t: fn(t, 1), (x,))


def test_naive_softmax_overflows_where_ours_does_not():
    x = torch.tensor([[1000.0, 0.0, -1000.0]])
    naive = torch.exp(x) / torch.exp(x).sum(1, keepdim=True)
    assert naive.isnan().any()
    torch.testing.assert_close(A.softmax(x, 1), torch.tensor([[1.0, 0.0, 0.0]]))
    assert A.log_softmax(x, 1)[0, 2].item() == -2000.0
    assert A.logsumexp(x, 1).item() == 1000.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_softmax_low_precision(dtype):
    x = torch.tensor([[12.0, 0.0, -3.0], [90.0, 89.0, 0.0]], dtype=dtype)
    assert not A.softmax(x, 1).isnan().any()
    torch.testing.assert_close(A.softmax(x, 1), F.softmax(x, 1))
    torch.testing.assert_close(A.log_softmax(x, 1), F.log_softmax(x, 1))
    torch.testing.assert_close(A.logsumexp(x, 1), torch.logsumexp(x, 1))


def test_softmax_family_infinities_match_torch():
    x = torch.tensor([[-INF, -INF, -INF], [INF, 0.0, 1.0], [0.0, -INF, 2.0],
                      [float("nan"), 0.0, 1.0]])
    family = ((A.softmax, F.softmax), (A.log_softmax, F.log_softmax), (A.logsumexp, torch.logsumexp))
    for ours, theirs in family:
        torch.testing.assert_close(ours(x, 1), theirs(x, 1), equal_nan=True)
    assert A.softmax(x, 1)[0].isnan().all() and A.softmax(x, 1)[3].isnan().all()
    assert A.logsumexp(x, 1).tolist()[:3] == [-INF, INF, pytest.approx(2.126928, abs=1e-6)]


def test_modules_match_torch_modules_and_state_dicts_load_both_ways():
    gen = torch.Generator().manual_seed(5)
    x = 3 * torch.randn(4, 6, 5, 5, generator=gen)
    pairs = [(A.Sigmoid(), torch.nn.Sigmoid()), (A.Hardsigmoid(), torch.nn.Hardsigmoid()),
             (A.Tanh(), torch.nn.Tanh()), (A.ReLU(), torch.nn.ReLU()), (A.ReLU6(), torch.nn.ReLU6()),
             (A.SELU(), torch.nn.SELU()),
             (A.SiLU(), torch.nn.SiLU()), (A.Hardswish(), torch.nn.Hardswish()), (A.Mish(), torch.nn.Mish()),
             (A.Softmax(1), torch.nn.Softmax(1)), (A.LogSoftmax(1), torch.nn.LogSoftmax(1)),
             (A.Softplus(2.0, 3.0), torch.nn.Softplus(2.0, 3.0)), (A.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
             (A.ELU(0.7), torch.nn.ELU(0.7)), (A.GELU("tanh"), torch.nn.GELU("tanh")),
             (A.Swish(1.0), torch.nn.SiLU()), (A.PReLU(6, 0.1), torch.nn.PReLU(6, 0.1))]
    for ours, theirs in pairs:
        torch.testing.assert_close(ours(x), theirs(x), msg=lambda m: f"{type(ours).__name__}: {m}")
    ours, theirs = A.PReLU(6), torch.nn.PReLU(6)
    with torch.no_grad():
        theirs.weight.copy_(torch.linspace(-0.5, 0.5, 6))
    ours.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(ours(x), theirs(x))
    theirs.load_state_dict(A.PReLU(6, 0.3).state_dict())
    assert torch.equal(theirs.weight.detach(), torch.full((6,), 0.3))
    assert "approximate='tanh'" in repr(A.GELU("tanh")) and "dim=1" in repr(A.Softmax(1))


def test_prelu_weight_gradient_per_channel_matches_torch():
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(3, 4, 2, 2, generator=gen, dtype=torch.float64)
    w1 = torch.tensor([0.1, -0.2, 0.3, 0.05], dtype=torch.float64, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_(True)
    A.prelu(x, w1).pow(2).sum().backward()
    F.prelu(x, w2).pow(2).sum().backward()
    torch.testing.assert_close(w1.grad, w2.grad)


@pytest.mark.parametrize("call,error,match", [
    (lambda: A.relu([1.0]), TypeError, "input must be a torch.Tensor"),
    (lambda: A.prelu(torch.ones(2, 3), [0.25]), TypeError, "weight must be a torch.Tensor, got list"),
    (lambda: A.prelu(torch.ones(2, 3), torch.ones(3, 1)), ValueError, "weight must be a 1-d tensor"),
    (lambda: A.sigmoid(torch.tensor([1, 2])), TypeError, "floating dtype"),
    (lambda: A.swish([1.0]), TypeError, "input"),
    (lambda: A.mish(torch.tensor([1])), TypeError, "input"),
    (lambda: A.softmax(torch.zeros(2, 3), 2), ValueError, r"dim must be in \[-2, 1\]"),
    (lambda: A.log_softmax(torch.zeros(2, 3), 1.0), TypeError, "dim must be an int"),
    (lambda: A.logsumexp(torch.zeros(2, 3), True), TypeError, "dim must be an int"),
    (lambda: A.softplus(torch.zeros(2), beta=0.0), ValueError, "beta must be > 0"),
    (lambda: A.gelu(torch.zeros(2), "erf"), ValueError, "approximate"),
    (lambda: A.prelu(torch.zeros(2, 3), torch.ones(4)), ValueError, "channels"),
    (lambda: A.prelu(torch.zeros(2, 3), torch.ones(1, 3)), ValueError, "weight must be a 1-d"),
    (lambda: A.derivative(A.relu, [0.0]), TypeError, "input"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_derivative_matches_closed_forms():
    x = torch.linspace(-6, 6, 97, dtype=torch.float64)
    s = torch.sigmoid(x)
    torch.testing.assert_close(A.derivative(A.sigmoid, x), s * (1 - s))
    torch.testing.assert_close(A.derivative(A.tanh, x), 1 - torch.tanh(x) ** 2)
    phi = torch.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi)
    torch.testing.assert_close(A.derivative(A.gelu, x), 0.5 * (1 + torch.erf(x / math.sqrt(2))) + x * phi)
    assert not A.derivative(A.sigmoid, x).requires_grad


# --- torch's module test database (torch.testing._internal.common_modules.module_db) ------------

TWINS = {name: getattr(A, name) for name in (
    "ELU", "GELU", "Hardswish", "ReLU", "LeakyReLU", "ReLU6", "PReLU", "Sigmoid", "SiLU", "Softmax",
    "LogSoftmax", "Softplus", "Tanh", "Mish", "SELU")}


@pytest.mark.parametrize("name,dtype,training,index,layout",
                         DB.cases(list(TWINS)) + DB.cases(list(TWINS), "channels_last")
                         + DB.cases(list(TWINS), "empty_batch"))
def test_module_db_sample_matches_torch(name, dtype, training, index, layout):
    """Every sample torch's test_modules.py runs (float32/64/16, bfloat16), as given, in
    channels_last and as an empty batch: outputs, strides, input and weight gradients."""
    DB.check_sample(TWINS[name], name, dtype, training, index, layout)


@pytest.mark.parametrize("name,training,index", DB.error_cases(list(TWINS)))
def test_module_db_error_inputs_raise_what_torch_raises(name, training, index):
    DB.check_error(TWINS[name], name, training, index)


def test_refused_by_design():
    """The differences from torch kept on purpose: torch accepts these, cvlib raises."""
    x = torch.randn(2, 3)
    assert torch.nn.ReLU(inplace=True)(x.clone()).shape == (2, 3)
    for make in (lambda: A.ReLU(inplace=True), lambda: A.ELU(1.0, inplace=True),
                 lambda: A.LeakyReLU(0.1, True), lambda: A.relu(x, inplace=True),
                 lambda: A.hardswish(x, inplace=True), lambda: A.mish(x, inplace=True)):
        with pytest.raises(ValueError, match="inplace=True is not supported"):
            make()
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        torch.nn.Softmax()(x)  # torch guesses a dim (deprecated)
    for cls in (A.Softmax, A.LogSoftmax):
        with pytest.raises(TypeError, match="dim must be an int"):
            cls(None)
    assert F.softplus(x, beta=-1.0).shape == (2, 3)
    with pytest.raises(ValueError, match="beta must be > 0"):
        A.softplus(x, beta=-1.0)
    empty = torch.zeros(0, 3)
    assert F.softmax(empty, 0).shape == (0, 3)
    for fn in (A.softmax, A.log_softmax, A.logsumexp):
        with pytest.raises(ValueError, match="no entries along dim 0"):
            fn(empty, 0)
    assert A.softmax(empty, 1).shape == (0, 3)  # an empty batch is fine


def test_softmax_backward_is_autograd_through_the_formula():
    gen = torch.Generator().manual_seed(2)
    x = (5 * torch.randn(6, 9, 4, generator=gen, dtype=torch.float64)).requires_grad_()
    g = torch.randn(6, 9, 4, generator=gen, dtype=torch.float64)
    for dim in (0, 1, -1):
        (ours,) = torch.autograd.grad(A.softmax(x, dim), x, g)
        e = torch.exp(x - x.amax(dim, keepdim=True).detach())
        (ref,) = torch.autograd.grad(e / e.sum(dim, keepdim=True), x, g)  # five elementary ops
        torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("fn,twin", [(A.softmax, F.softmax), (A.log_softmax, F.log_softmax)])
def test_softmax_channels_last_and_dtype_argument(fn, twin):
    x = torch.randn(2, 5, 3, 4).to(memory_format=torch.channels_last)
    y, y_ref = fn(x, 1), twin(x, 1)
    assert y.is_contiguous() and y.stride() == y_ref.stride()
    torch.testing.assert_close(y, y_ref)
    half = x.half()
    y = fn(half, 1, dtype=torch.float32)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, twin(half, 1, dtype=torch.float32))
