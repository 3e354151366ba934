"""cvlib.tuning: each check catches the bug it is for, passes healthy models, and leaves no trace."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cvlib.device import seed_everything
from cvlib.models import SmallCNN
from cvlib.tuning import gradient_flow_check, lr_range_test, overfit_one_batch


def _batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _snapshot(model, optimizer):
    return (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()),
            {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
            {n: m.training for n, m in model.named_modules()})


def _assert_same(a, b):
    (sa, oa, ga, ma), (sb, ob, gb, mb) = a, b
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert oa["param_groups"] == ob["param_groups"]
    assert oa["state"].keys() == ob["state"].keys()
    for k in oa["state"]:
        for name, v in oa["state"][k].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(ob["state"][k][name]))
    assert ga.keys() == gb.keys()
    for n in ga:
        assert (ga[n] is None) == (gb[n] is None) and (ga[n] is None or torch.equal(ga[n], gb[n]))
    assert ma == mb


def _stepped_sgd(model, x, y):
    """An SGD-momentum optimizer that already has state, and stale gradients in the model."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    F.cross_entropy(model(x), y).backward()  # leaves .grad set
    return opt


# --- gradient_flow_check -------------------------------------------------------------------

def test_healthy_model_passes_and_nothing_changes():
    seed_everything(0)
    model, (x, y) = SmallCNN(width=4), _batch()
    opt = _stepped_sgd(model, x, y)
    model.eval()
    model.features[1].train()  # per-module flags must come back exactly
    before = _snapshot(model, opt)
    rng = torch.get_rng_state()
    report = gradient_flow_check(model, opt, x, y)
    assert report.ok, str(report)
    assert set(report.status.values()) == {"ok"} and list(report.status) == [n for n, _ in model.named_parameters()]
    assert 0 < report.update_ratio < 0.5
    _assert_same(before, _snapshot(model, opt))
    assert torch.equal(rng, torch.get_rng_state())


@pytest.mark.parametrize("opt_cls", [torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop])
def test_healthy_with_adaptive_optimizers(opt_cls):
    seed_everything(1)
    model, (x, y) = SmallCNN(width=4), _batch()
    report = gradient_flow_check(model, opt_cls(model.parameters(), lr=1e-3), x, y)
    assert report.ok, str(report)


class TwoBranch(nn.Module):
    def __init__(self, detach=False, unused=False, gate=1.0):
        super().__init__()
        self.a, self.b, self.head = nn.Linear(64, 8), nn.Linear(64, 8), nn.Linear(8, 10)
        self.unused = nn.Linear(3, 3) if unused else None
        self.detach, self.gate = detach, gate

    def forward(self, x):
        x = x.flatten(1)
        b = self.b(x)
        return self.head(self.a(x) + self.gate * (b.detach() if self.detach else b))


def test_detached_branch_and_unused_layer_have_no_grad_even_with_stale_grads():
    seed_everything(0)
    x, y = _batch()
    model = TwoBranch(detach=True, unused=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = torch.ones_like(p)  # stale gradients must not hide missing ones
    report = gradient_flow_check(model, opt, x, y)
    assert {n for n, s in report.status.items() if s == "no_grad"} == {"b.weight", "b.bias", "unused.weight", "unused.bias"}
    assert report.status["a.weight"] == report.status["head.bias"] == "ok" and not report.ok
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())


def test_zero_gate_dead_relu_frozen_and_missing_from_optimizer():
    seed_everything(0)
    x, y = _batch()
    report = gradient_flow_check(TwoBranch(gate=0.0), torch.optim.SGD(TwoBranch().parameters(), lr=0.1), x, y)
    assert report.status["b.weight"] == "zero_grad"
    assert report.status["a.weight"] == "unchanged"  # this optimizer holds another model's parameters

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    with torch.no_grad():
        model[1].bias.fill_(-1e3)
    report = gradient_flow_check(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y)
    assert report.status == {"1.weight": "zero_grad", "1.bias": "zero_grad", "3.weight": "zero_grad", "3.bias": "ok"}

    model[1].bias.data.zero_()
    model[1].weight.requires_grad_(False)
    report = gradient_flow_check(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y)
    assert report.status["1.weight"] == "frozen" and not report.ok
    assert gradient_flow_check(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, allow_frozen=True).ok


def test_exploding_and_nonfinite_steps_are_reported():
    seed_everything(0)
    x, y = _batch()
    model = SmallCNN(width=4)
    report = gradient_flow_check(model, torch.optim.SGD(model.parameters(), lr=1e3), x, y)
    assert set(report.status.values()) == {"ok"} and report.step_too_large and not report.ok
    assert "learning rate too high" in str(report)
    report = gradient_flow_check(model, torch.optim.SGD(model.parameters(), lr=float("inf")), x, y)
    assert "nonfinite" in report.status.values() and not report.ok
    x_nan = x.clone()
    x_nan[0, 0, 0, 0] = float("nan")
    report = gradient_flow_check(model, torch.optim.SGD(model.parameters(), lr=0.1), x_nan, y)
    assert report.status["features.0.weight"] == "nonfinite"
    assert all(torch.isfinite(p).all() for p in model.parameters())  # restored


def test_gradient_flow_check_rejects_bad_arguments():
    with pytest.raises(TypeError, match="model"):
        gradient_flow_check(lambda x: x, torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=1), *_batch())
    with pytest.raises(TypeError, match="optimizer"):
        gradient_flow_check(nn.Linear(2, 2), "sgd", *_batch())


# --- overfit_one_batch ---------------------------------------------------------------------

def test_overfit_one_batch_succeeds_on_a_healthy_model_and_reports_a_broken_loss():
    seed_everything(0)
    x, y = _batch(16)
    model = SmallCNN(width=8)
    result = overfit_one_batch(model, torch.optim.Adam(model.parameters(), lr=1e-2), x, y)
    assert result.reached and 0 < result.steps <= 200 and result.losses[-1] <= 0.01
    assert result.accuracies[-1] == 1.0 and len(result.losses) == result.steps + 1
    seed_everything(0)
    model = SmallCNN(width=8)
    broken = overfit_one_batch(model, torch.optim.Adam(model.parameters(), lr=1e-2), x, y, max_steps=50,
                               loss_fn=lambda z, t: F.cross_entropy(z.softmax(1), t))
    assert not broken.reached and broken.steps is None and "FAILED" in str(broken)
    assert min(broken.losses) > 1.4  # the double-softmax floor, -log(e / (e + 9)) = 1.46
    model = SmallCNN(width=8)
    nan = overfit_one_batch(model, torch.optim.SGD(model.parameters(), lr=1e30), x, y)
    assert not nan.reached and "loss became" in nan.message
    with pytest.raises(ValueError, match="max_steps"):
        overfit_one_batch(model, torch.optim.SGD(model.parameters(), lr=1), x, y, max_steps=0)


# --- lr_range_test -------------------------------------------------------------------------

def _manual_range_test(w0, b0, batches, start, end, n, beta, factor):
    """Independent reference: plain SGD on a linear model written with raw tensors."""
    w, b, avg, lrs, smooth = w0.clone(), b0.clone(), 0.0, [], []
    for i in range(n):
        x, y = batches[i % len(batches)]
        lr = start * (end / start) ** (i / (n - 1))
        w.requires_grad_(True), b.requires_grad_(True)
        loss = F.cross_entropy(x.flatten(1) @ w.T + b, y)
        if not math.isfinite(loss.item()):
            break
        gw, gb = torch.autograd.grad(loss, (w, b))
        w, b = (w - lr * gw).detach(), (b - lr * gb).detach()
        avg = beta * avg + (1 - beta) * loss.item()
        lrs.append(lr)
        smooth.append(avg / (1 - beta ** (i + 1)))
        if smooth[-1] > factor * min(smooth):
            break
    return lrs, smooth


@pytest.mark.parametrize("beta,factor", [(0.98, 4.0), (0.0, 4.0), (0.7, 1.5)])
def test_lr_range_test_matches_a_manual_sweep_and_restores_state(beta, factor):
    seed_everything(0)
    batches = [_batch(16, seed=s) for s in range(5)]  # fewer batches than steps: re-iterated
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.123)
    before = _snapshot(model, opt)
    got = lr_range_test(model, opt, batches, start_lr=1e-3, end_lr=1e3, num_steps=40, beta=beta,
                        diverge_factor=factor)
    lrs, smooth = _manual_range_test(model[1].weight.detach(), model[1].bias.detach(), batches,
                                     1e-3, 1e3, 40, beta, factor)
    assert got.lrs == pytest.approx(lrs, rel=1e-12)
    torch.testing.assert_close(torch.tensor(got.smoothed), torch.tensor(smooth), rtol=1e-4, atol=1e-5)
    assert got.diverged and len(got.lrs) < 40
    best = min(range(len(smooth)), key=smooth.__getitem__)
    assert got.min_lr == lrs[best] and got.suggested_lr == pytest.approx(lrs[best] / 10)
    _assert_same(before, _snapshot(model, opt))


def test_lr_range_test_without_divergence_runs_every_step_and_checks_arguments():
    seed_everything(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    res = lr_range_test(model, opt, [_batch(32)], start_lr=1e-6, end_lr=1e-3, num_steps=10)
    assert not res.diverged and len(res.lrs) == 10 and res.lrs[-1] == pytest.approx(1e-3)
    assert opt.state_dict()["state"] == {}  # Adam's moments from the sweep are gone
    for kwargs, match in [({"start_lr": 1.0, "end_lr": 0.1}, "start_lr"), ({"num_steps": 1}, "num_steps"),
                          ({"beta": 1.0}, "beta"), ({"diverge_factor": 1.0}, "diverge_factor")]:
        with pytest.raises(ValueError, match=match):
            lr_range_test(model, opt, [_batch()], **kwargs)
    with pytest.raises(ValueError, match="yielded nothing"):
        lr_range_test(model, opt, [], num_steps=3)
