"""cvlib.optimizers: step-for-step parity with torch.optim, on torch's own optimizer test database too.

Two sources of cases. Our own (CASES): 50 steps of a small model's real gradients, in float32 and
float64, also under a float64 default dtype, with param groups and a learning-rate cut. And
torch's ``optim_db`` (``torch.testing._internal.common_optimizers``, what torch's test_optim.py
runs): every configuration of every optimizer that has a cvlib twin, in float32, float64, float16
and bfloat16, 5 steps through ``step(closure)``; every one of its error inputs; and the
implementation flags torch adds to those configurations (foreach, fused, capturable,
differentiable), which cvlib refuses by design.

Tolerances: on the model, parameters and state agree with torch.optim to rtol 1e-10 / atol 1e-12
in float64 after 50 steps, and to rtol 1e-4 / atol 1e-5 in float32 (the update is written with
the same in-place ops as torch's for-loop, so in practice they agree to the last bit; the slack
is for a different order of floating-point operations, should either side change it). On
optim_db the tolerances are a few units in the last place (DB_TOL).
"""

from __future__ import annotations

import copy
import inspect
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing._internal.common_optimizers import OptimizerErrorEnum, optim_db

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


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01, amsgrad=True)),
                                         ("NAdam", dict(lr=0.01)), ("RMSprop", dict(momentum=0.5, centered=True))])
def test_state_dict_loads_both_ways(name, kwargs):
    """Same state names and param-group keys as torch: a run can switch implementations mid-way.
    After 10 steps of each, each one's state is loaded into the other, and both carry on together."""
    ref, ours = _run_pair(name, kwargs, torch.float64, "cpu", steps=10)
    opt_ref = getattr(torch.optim, name)(ref.parameters(), **kwargs)
    opt_ours = getattr(O, name)(ours.parameters(), **kwargs)
    for p_ref, p in zip(ref.parameters(), ours.parameters()):  # the states after 10 steps
        p_ref.grad = p.grad = torch.ones_like(p)
    opt_ref.step()
    opt_ours.step()
    switched_ours = getattr(O, name)(ref.parameters(), **kwargs)
    switched_ours.load_state_dict(opt_ref.state_dict())  # torch -> cvlib
    switched_ref = getattr(torch.optim, name)(ours.parameters(), **kwargs)
    switched_ref.load_state_dict(opt_ours.state_dict())  # cvlib -> torch
    gen = torch.Generator().manual_seed(5)
    for _ in range(5):
        for p_ref, p in zip(ref.parameters(), ours.parameters()):
            p_ref.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.grad = p_ref.grad.clone()
        switched_ours.step()
        switched_ref.step()
    for p_ref, p in zip(ref.parameters(), ours.parameters()):
        torch.testing.assert_close(p, p_ref, **TOL[torch.float64])
        _state_close(switched_ours.state[p_ref], switched_ref.state[p], TOL[torch.float64])


def test_sgd_first_step_ignores_dampening():
    p = nn.Parameter(torch.zeros(1))
    opt = O.SGD([p], lr=1.0, momentum=0.9, dampening=0.5)
    p.grad = torch.ones(1)
    opt.step()
    assert p.item() == -1.0  # buffer = g, not (1 - dampening) g
    opt.step()
    assert p.item() == pytest.approx(-1.0 - (0.9 + 0.5))


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


# --- torch's own optimizer test database ---------------------------------------------------------
# `optim_db` (torch.testing._internal.common_optimizers) is what torch's test_optim.py runs every
# optimizer through: for each one, the configurations it tests (`optim_inputs_func`) and the inputs
# that must fail (`optim_error_inputs_func`). Every configuration of every optimizer with a cvlib
# twin runs here; the implementation flags torch adds to them (`supported_impls`: foreach, fused,
# differentiable; and capturable) are refused by design.

OPTIM_DB = {info.optim_cls.__name__: info for info in optim_db if info.optim_cls.__name__ in O.__all__}
# the implementations cvlib leaves out (see cvlib.optimizers' docstring); False/None mean the for-loop
FLAGS = ("foreach", "fused", "capturable", "differentiable")
DB_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]  # torch's CPU for-loop runs all four
# cvlib writes the update with the same in-place ops in the same order as torch's for-loop, so the
# results agree to the last bit in practice; the tolerances allow a few units in the last place
DB_TOL = {torch.float64: dict(rtol=1e-12, atol=1e-14), torch.float32: dict(rtol=1e-6, atol=1e-7),
          torch.float16: dict(rtol=2e-3, atol=1e-5), torch.bfloat16: dict(rtol=1.6e-2, atol=1e-5)}


def _torch_flags(name: str) -> list[str]:
    """The implementation flags torch's twin takes (its signature), in FLAGS order."""
    return [f for f in FLAGS if f in inspect.signature(getattr(torch.optim, name).__init__).parameters]


def _db_configs(dtype):
    return [(name, inp.kwargs, inp.desc) for name, info in OPTIM_DB.items()
            for inp in info.optim_inputs_func(device="cpu", dtype=dtype)]


DB_CASES = [(name, kwargs, desc, dtype) for dtype in DB_DTYPES for name, kwargs, desc in _db_configs(dtype)]
REFUSED_CASES = [(name, kwargs, desc, flag) for name, kwargs, desc in _db_configs(torch.float32)
                 for flag in _torch_flags(name)]
ERROR_CASES = [(name, e) for name, info in OPTIM_DB.items()
               for e in info.optim_error_inputs_func(device="cpu", dtype=torch.float32)]


def test_optim_db_covers_every_cvlib_optimizer():
    assert set(OPTIM_DB) == set(O.__all__)
    assert len(DB_CASES) == 4 * len(_db_configs(torch.float32)) >= 4 * 40  # 47 configurations in torch 2.14


@pytest.mark.parametrize("name,kwargs,desc,dtype", DB_CASES,
                         ids=[f"{n}-{d}-{str(t)[6:]}" for n, _, d, t in DB_CASES])
def test_matches_torch_on_optim_db(name, kwargs, desc, dtype):
    """5 steps through ``step(closure)`` (the closure hands both the same gradients), with torch's
    for-loop base configuration: every implementation flag torch takes given as False."""
    flags = {flag: False for flag in _torch_flags(name)}
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(10, 5, generator=gen).to(dtype), torch.randn(10, generator=gen).to(dtype),
             torch.randn(3, generator=gen).to(dtype)]  # the last one never gets a gradient
    ref, ours = ([p.clone().requires_grad_() for p in start] for _ in range(2))
    opt_ref = getattr(torch.optim, name)(ref, **copy.deepcopy(kwargs), **flags)
    opt_ours = getattr(O, name)(ours, **copy.deepcopy(kwargs), **flags)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=gen).to(dtype) for p in start[:2]]

        def closure(params, grads=grads):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            return sum(float((p.detach() * g).sum()) for p, g in zip(params, grads))

        loss_ref = opt_ref.step(lambda: closure(ref))
        assert opt_ours.step(lambda: closure(ours)) == loss_ref
    tol = DB_TOL[dtype]
    # not vacuous: the parameters moved (in float16 a step of lr 0.01 can be below their rounding;
    # then the optimizer's state, compared below, still holds what it accumulated)
    state = [v for p in ref[:2] for v in opt_ref.state[p].values() if torch.is_tensor(v) and v.numel() > 1]
    assert any(not torch.equal(p, p0) for p, p0 in zip(ref, start)) or (state and all(v.any() for v in state))
    for p_ref, p in zip(ref[:2], ours):
        assert torch.isfinite(p_ref).float().mean() > 0.9
        torch.testing.assert_close(p, p_ref, **tol, equal_nan=True)  # a 0/0 in float16 is torch's too
        _state_close(opt_ours.state[p], opt_ref.state[p_ref], dict(**tol, equal_nan=True))
    assert torch.equal(ours[2], start[2]) and ours[2] not in opt_ours.state
    assert opt_ours.param_groups[0].keys() == opt_ref.param_groups[0].keys()


@pytest.mark.parametrize("name,kwargs,desc,flag", REFUSED_CASES,
                         ids=[f"{n}-{d}-{f}" for n, _, d, f in REFUSED_CASES])
def test_optim_db_implementation_flags_are_refused(name, kwargs, desc, flag):
    """What torch's tests add to each configuration (foreach=True, fused=True, ...): a teaching
    simplification, refused by name, never silently run as the for-loop."""
    params = [nn.Parameter(torch.randn(4, 3))]
    with pytest.raises(ValueError, match=rf"{flag}=True is not implemented.*torch\.optim\.{name}"):
        getattr(O, name)(params, **copy.deepcopy(kwargs), **{flag: True})
    opt = getattr(O, name)(params, **copy.deepcopy(kwargs))  # ... also where a param group asks for it
    with pytest.raises(ValueError, match=f"{flag}=True"):
        opt.add_param_group({"params": [nn.Parameter(torch.randn(2))], flag: True})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("name,error_input", ERROR_CASES,
                         ids=[f"{n}-{e.optimizer_error_input.desc}" for n, e in ERROR_CASES])
def test_optim_db_error_inputs(name, error_input):
    """Each of torch's error inputs fails in cvlib with the same exception (or warning) type; where
    cvlib raises the error itself, the message names an argument that was passed."""
    inp = error_input.optimizer_error_input
    assert error_input.error_on == OptimizerErrorEnum.CONSTRUCTION_ERROR  # all of them on the CPU

    def construct(cls):
        params = inp.params if inp.params is not None else [nn.Parameter(torch.randn(1, 1))]
        return cls(params, **copy.deepcopy(inp.kwargs))

    error = error_input.error_type
    for cls in (getattr(torch.optim, name), getattr(O, name)):  # torch first: the harness is right
        if issubclass(error, Warning):
            with pytest.warns(error, match=error_input.error_regex):
                construct(cls)
            continue
        with pytest.raises(error) as info:
            construct(cls)
        if cls is getattr(torch.optim, name) or not inp.kwargs:  # torch's own check (base class)
            assert re.search(error_input.error_regex, str(info.value))
        else:
            assert any(key in str(info.value) for key in inp.kwargs), str(info.value)


@pytest.mark.parametrize("name", O.__all__)
def test_signature_is_torchs(name):
    """Every argument torch 2.14 takes, in its place (positional or keyword-only), default included."""
    theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters
    ours = inspect.signature(getattr(O, name).__init__).parameters
    assert list(ours) == list(theirs)
    for key, p in theirs.items():
        assert ours[key].kind == p.kind and ours[key].default == p.default, key


def test_maximize_is_descent_on_the_negated_loss():
    """maximize=True on f is minimize on -f: the same path, for every optimizer."""
    for name in O.__all__:
        up, down = nn.Parameter(torch.tensor([1.0, -2.0])), nn.Parameter(torch.tensor([1.0, -2.0]))
        opt_up, opt_down = getattr(O, name)([up], lr=0.1, maximize=True), getattr(O, name)([down], lr=0.1)
        for _ in range(3):
            up.grad, down.grad = -2 * up.detach(), 2 * down.detach()  # f = -|x|^2 up, |x|^2 down
            opt_up.step()
            opt_down.step()
        torch.testing.assert_close(up, down, rtol=0, atol=0)
        assert down.abs().sum() < 3, name  # it went downhill


def test_tensor_lr_is_read_at_each_step():
    """A one-element tensor lr, changed in place between steps (as a scheduler on a tensor does)."""
    lr = torch.tensor(0.1)
    p = nn.Parameter(torch.zeros(2))
    opt = O.SGD([p], lr=lr)
    p.grad = torch.ones(2)
    opt.step()
    lr.fill_(0.5)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((2,), -0.6))
    with pytest.raises(ValueError, match="lr must have one element"):
        O.Adam([p], lr=torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="betas\\[0\\] as a tensor is not implemented"):
        O.Adam([p], betas=(torch.tensor(0.9), torch.tensor(0.99)))
    with pytest.raises(ValueError, match="weight_decay as a tensor"):
        O.SGD([p], weight_decay=torch.tensor(0.1))


@pytest.mark.parametrize("name", O.__all__)
def test_complex_and_integer_params_and_sparse_gradients_are_refused(name):
    with pytest.raises(TypeError, match="params must have a floating dtype, got torch.complex64"):
        getattr(O, name)([nn.Parameter(torch.zeros(2, dtype=torch.complex64))])
    opt = getattr(O, name)([nn.Parameter(torch.zeros(2))])
    with pytest.raises(TypeError, match="params must have a floating dtype, got torch.int64"):
        opt.add_param_group({"params": [torch.zeros(2, dtype=torch.long)]})
    assert len(opt.param_groups) == 1
    p = opt.param_groups[0]["params"][0]
    p.grad = torch.zeros(2).to_sparse()
    with pytest.raises(ValueError, match="sparse gradients"):
        opt.step()
