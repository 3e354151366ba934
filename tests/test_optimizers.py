"""cvlib.optimizers: step-for-step parity with torch.optim, Newton/L-BFGS, loss gradients, bad input.

Tolerances: in float64 parameters and state agree with torch.optim to rtol 1e-10 / atol 1e-12
after 50 steps (the update rules are the same; only the order of floating-point operations
differs). In float32 that rounding noise accumulates to about 1e-5 relative, so float32 runs
are checked at rtol 1e-4 / atol 1e-5.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cvlib import optimizers as O

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, weight_decay=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.01, momentum_decay=0.01)),
]


def _model(dtype, device):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).to(device, dtype)


def _state_close(ours: dict, theirs: dict, tol: dict) -> None:
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        expected = torch.as_tensor(value).double().cpu()
        got = torch.as_tensor(ours[key]).double().cpu()
        torch.testing.assert_close(got, expected, **tol, msg=lambda m: f"state {key!r}: {m}")


def _run_pair(name, kwargs, dtype, device, steps=50, groups=False, lr_change=False):
    """Train twin models with torch.optim.NAME and cvlib's NAME on the same gradients."""
    ref, ours = _model(dtype, device), _model(dtype, device)
    if groups:  # per-group hyper-parameters: the second layer at a tenth of the rate
        def split(m):
            return [{"params": m[0].parameters()}, {"params": m[2].parameters(), "lr": kwargs["lr"] / 10}]
        opt_ref, opt_ours = getattr(torch.optim, name)(split(ref), **kwargs), getattr(O, name)(split(ours), **kwargs)
    else:
        opt_ref = getattr(torch.optim, name)(ref.parameters(), **kwargs)
        opt_ours = getattr(O, name)(ours.parameters(), **kwargs)
    gen = torch.Generator().manual_seed(1)
    tol = TOL[dtype]
    for step in range(steps):
        x = torch.randn(16, 6, generator=gen, dtype=dtype).to(device)
        y = torch.randint(0, 3, (16,), generator=gen).to(device)
        opt_ref.zero_grad()
        F.cross_entropy(ref(x), y).backward()
        for p_ref, p in zip(ref.parameters(), ours.parameters()):
            p.grad = p_ref.grad.clone()  # the same gradients for both
        if lr_change and step == steps // 2:  # what a scheduler does
            for opt in (opt_ref, opt_ours):
                for group in opt.param_groups:
                    group["lr"] *= 0.1
        opt_ref.step()
        opt_ours.step()
    for p_ref, p in zip(ref.parameters(), ours.parameters()):
        torch.testing.assert_close(p, p_ref, **tol)
        _state_close(opt_ours.state[p], opt_ref.state[p_ref], tol)
    return ref, ours


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch_optim_over_50_steps(name, kwargs, dtype):
    ref, ours = _run_pair(name, kwargs, dtype, "cpu")
    start = _model(dtype, "cpu")
    moved = max((p - p0).abs().max().item() for p, p0 in zip(ours.parameters(), start.parameters()))
    assert moved > 1e-3, "the parameters should have moved: the comparison would be vacuous"


@pytest.fixture
def float64_default():
    """torch.set_default_dtype(torch.float64) for one test, as the book's chapters set it."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch_optim_under_a_float64_default_dtype(name, kwargs, dtype, float64_default):
    """torch keeps scalar state (NAdam's mu_product) in float64 when the default dtype is float64,
    also for float32 parameters: cvlib must follow, or float64 parity fails at about 1e-8."""
    _run_pair(name, kwargs, dtype, "cpu")


@pytest.mark.parametrize("default", [torch.float32, torch.float64])
def test_nadam_mu_product_dtype_follows_torch(default):
    before = torch.get_default_dtype()
    torch.set_default_dtype(default)
    try:
        pair = []
        for make in (torch.optim.NAdam, O.NAdam):
            p = nn.Parameter(torch.ones(2, dtype=torch.float32))
            opt = make([p], lr=0.01)
            p.grad = torch.ones(2, dtype=torch.float32)
            opt.step()
            pair.append(torch.as_tensor(opt.state[p]["mu_product"]).dtype)
    finally:
        torch.set_default_dtype(before)
    assert pair[0] == pair[1] == default


GROUP_CASES = {
    "SGD": dict(lr=0.1, momentum=0.9, weight_decay=0.01),
    "Adagrad": dict(lr=0.1, weight_decay=0.01),
    "Adadelta": dict(lr=1.0, weight_decay=0.01),
    "RMSprop": dict(lr=0.01, momentum=0.9, centered=True),
    "Adam": dict(lr=0.01, weight_decay=0.01),
    "AdamW": dict(lr=0.01, weight_decay=0.1),
    "NAdam": dict(lr=0.01, weight_decay=0.01),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(GROUP_CASES))
def test_param_groups_and_lr_change(name, device):
    """Two param groups with different rates, and every rate cut by 10 half-way (a schedule)."""
    _run_pair(name, GROUP_CASES[name], torch.float64, device, steps=30, groups=True, lr_change=True)


def test_params_without_grad_are_skipped():
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2))
    opt = O.Adam([a, b], lr=0.1)
    a.grad = torch.full((3,), 0.5)
    opt.step()
    assert torch.equal(b, torch.ones(2)) and b not in opt.state
    assert set(opt.state[a]) == {"step", "exp_avg", "exp_avg_sq"}
    # Adam's first step moves every coordinate by lr (bias correction makes m_hat/sqrt(v_hat) = sign g)
    torch.testing.assert_close(a.detach(), torch.full((3,), 0.9))


def test_state_dict_loads_both_ways():
    """Same state names as torch: a run can switch between the implementations mid-way."""
    for name, kwargs in [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01))]:
        ref, ours = _run_pair(name, kwargs, torch.float64, "cpu", steps=10)
        fresh = getattr(O, name)(ref.parameters(), **kwargs)
        fresh.load_state_dict(getattr(torch.optim, name)(ref.parameters(), **kwargs).state_dict())
        theirs = getattr(torch.optim, name)(ours.parameters(), **kwargs)
        theirs.load_state_dict(getattr(O, name)(ours.parameters(), **kwargs).state_dict())


def test_sgd_first_step_ignores_dampening():
    p = nn.Parameter(torch.zeros(1))
    opt = O.SGD([p], lr=1.0, momentum=0.9, dampening=0.5)
    p.grad = torch.ones(1)
    opt.step()
    assert p.item() == -1.0  # buffer = g, not (1 - dampening) g
    opt.step()
    assert p.item() == pytest.approx(-1.0 - (0.9 + 0.5))


def test_newton_solves_a_quadratic_in_one_step():
    path = O.newton(O.quadratic, torch.tensor([2.0, -1.5], dtype=torch.float64), steps=1)
    assert path.shape == (2, 2)
    torch.testing.assert_close(path[-1], torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)


def test_newton_and_lbfgs_find_the_rosenbrock_minimum():
    x0 = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    newton_path = O.newton(O.rosenbrock, x0, steps=10)
    torch.testing.assert_close(newton_path[-1], torch.ones(2, dtype=torch.float64))
    path, evaluations = O.minimize(
        O.rosenbrock, x0, lambda p: torch.optim.LBFGS(p, lr=1, max_iter=1, max_eval=20, tolerance_grad=1e-12,
                                    tolerance_change=1e-15, line_search_fn="strong_wolfe"), 60)
    torch.testing.assert_close(path[-1], torch.ones(2, dtype=torch.float64), atol=1e-6, rtol=0)
    assert evaluations >= 60


def test_minimize_matches_a_hand_written_loop():
    x0 = torch.tensor([1.0, 1.0], dtype=torch.float64)
    path, evaluations = O.minimize(O.quadratic, x0, lambda p: O.SGD(p, lr=0.05), 5)
    x = x0.clone()
    for _ in range(5):
        xg = x.clone().requires_grad_(True)
        x = x - 0.05 * torch.autograd.grad(O.quadratic(xg), xg)[0]
    torch.testing.assert_close(path[-1], x)
    assert evaluations == 5 and path.shape == (6, 2)


def test_surfaces():
    assert O.rosenbrock(torch.tensor([1.0, 1.0])).item() == 0.0
    assert O.rosenbrock(torch.tensor([0.0, 0.0])).item() == 1.0
    h = torch.autograd.functional.hessian(lambda v: O.quadratic(v, condition=50.0),
                                          torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.eigvalsh(h), torch.tensor([1.0, 50.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quadratic_is_rotated_in_the_input_dtype(dtype):
    # the rotation's cos and sin follow the input's dtype: float32 in, float32 out; float64 is
    # rotated in float64, so its Hessian has the eigenvalues 1 and condition to float64 precision
    xy = torch.tensor([0.3, -0.7], dtype=dtype)
    assert O.quadratic(xy, condition=25.0).dtype == dtype
    h = torch.autograd.functional.hessian(lambda v: O.quadratic(v, condition=25.0), torch.zeros(2, dtype=dtype))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(torch.linalg.eigvalsh(h), torch.tensor([1.0, 25.0], dtype=dtype), atol=tol, rtol=0)
    angle = torch.tensor(0.5, dtype=dtype)
    expected = 0.5 * ((angle.cos() * 0.3 + angle.sin() * -0.7) ** 2
                      + 25.0 * (-angle.sin() * 0.3 + angle.cos() * -0.7) ** 2)
    # float64: to rounding (1e-13), far closer than a float32 cos and sin would get (about 1e-8)
    rtol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(O.quadratic(xy, condition=25.0), expected, atol=0, rtol=rtol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_gradients_match_autograd(dtype):
    gen = torch.Generator().manual_seed(3)
    z = (3 * torch.randn(20, 5, generator=gen)).to(dtype).requires_grad_(True)
    y = torch.randint(0, 5, (20,), generator=gen)
    onehot = F.one_hot(y, 5).to(dtype)
    for loss, formula in [(F.cross_entropy(z, y, reduction="sum"), O.softmax_ce_grad),
                          (((z.softmax(1) - onehot) ** 2).sum(), O.softmax_mse_grad),
                          (F.binary_cross_entropy_with_logits(z, onehot, reduction="sum"), O.sigmoid_ce_grad),
                          (((torch.sigmoid(z) - onehot) ** 2).sum(), O.sigmoid_mse_grad)]:
        (grad,) = torch.autograd.grad(loss, z)
        target = y if formula in (O.softmax_ce_grad, O.softmax_mse_grad) else onehot
        torch.testing.assert_close(formula(z.detach(), target), grad)


def test_mse_sigmoid_gradient_vanishes_when_confidently_wrong():
    z, y = torch.tensor([-10.0]), torch.tensor([1.0])
    assert abs(O.sigmoid_mse_grad(z, y).item()) < 1e-4
    assert O.sigmoid_ce_grad(z, y).item() == pytest.approx(-1.0, abs=1e-4)


@pytest.mark.parametrize("make,error,word", [
    (lambda p: O.SGD(p, lr=-0.1), ValueError, "lr"),
    (lambda p: O.SGD(p, lr="0.1"), TypeError, "lr"),
    (lambda p: O.SGD(p, lr=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda p: O.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda p: O.Adam(p, betas=(0.9, 1.0)), ValueError, "betas[1]"),
    (lambda p: O.Adam(p, betas=0.9), TypeError, "betas"),
    (lambda p: O.AdamW(p, eps=-1e-8), ValueError, "eps"),
    (lambda p: O.Adadelta(p, rho=1.5), ValueError, "rho"),
    (lambda p: O.RMSprop(p, momentum=-0.5), ValueError, "momentum"),
    (lambda p: O.NAdam(p, weight_decay=-1.0), ValueError, "weight_decay"),
    (lambda p: O.Adagrad(p, lr_decay=True), TypeError, "lr_decay"),
])
def test_bad_hyper_parameters(make, error, word):
    with pytest.raises(error, match=word.replace("[", r"\[").replace("]", r"\]")):
        make([nn.Parameter(torch.zeros(1))])


def test_bad_start_and_steps():
    with pytest.raises(TypeError, match="x0"):
        O.newton(O.rosenbrock, [0.0, 0.0], steps=1)
    with pytest.raises(ValueError, match="steps"):
        O.newton(O.rosenbrock, torch.zeros(2), steps=-1)
