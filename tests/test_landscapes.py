"""cvlib.landscapes: Newton and L-BFGS on the test surfaces, `minimize`, loss gradients vs autograd, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cvlib import landscapes as L
from cvlib import optimizers


def test_newton_solves_a_quadratic_in_one_step():
    path = L.newton(L.quadratic, torch.tensor([2.0, -1.5], dtype=torch.float64), steps=1)
    assert path.shape == (2, 2)
    torch.testing.assert_close(path[-1], torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)


def test_newton_and_lbfgs_find_the_rosenbrock_minimum():
    x0 = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    newton_path = L.newton(L.rosenbrock, x0, steps=10)
    torch.testing.assert_close(newton_path[-1], torch.ones(2, dtype=torch.float64))
    path, evaluations = L.minimize(
        L.rosenbrock, x0, lambda p: torch.optim.LBFGS(p, lr=1, max_iter=1, max_eval=20, tolerance_grad=1e-12,
                                    tolerance_change=1e-15, line_search_fn="strong_wolfe"), 60)
    torch.testing.assert_close(path[-1], torch.ones(2, dtype=torch.float64), atol=1e-6, rtol=0)
    assert evaluations >= 60


def test_minimize_matches_a_hand_written_loop():
    x0 = torch.tensor([1.0, 1.0], dtype=torch.float64)
    path, evaluations = L.minimize(L.quadratic, x0, lambda p: optimizers.SGD(p, lr=0.05), 5)
    x = x0.clone()
    for _ in range(5):
        xg = x.clone().requires_grad_(True)
        x = x - 0.05 * torch.autograd.grad(L.quadratic(xg), xg)[0]
    torch.testing.assert_close(path[-1], x)
    assert evaluations == 5 and path.shape == (6, 2)


def test_surfaces():
    assert L.rosenbrock(torch.tensor([1.0, 1.0])).item() == 0.0
    assert L.rosenbrock(torch.tensor([0.0, 0.0])).item() == 1.0
    h = torch.autograd.functional.hessian(lambda v: L.quadratic(v, condition=50.0),
                                          torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.eigvalsh(h), torch.tensor([1.0, 50.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quadratic_is_rotated_in_the_input_dtype(dtype):
    # the rotation's cos and sin follow the input's dtype: float32 in, float32 out; float64 is
    # rotated in float64, so its Hessian has the eigenvalues 1 and condition to float64 precision
    xy = torch.tensor([0.3, -0.7], dtype=dtype)
    assert L.quadratic(xy, condition=25.0).dtype == dtype
    h = torch.autograd.functional.hessian(lambda v: L.quadratic(v, condition=25.0), torch.zeros(2, dtype=dtype))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(torch.linalg.eigvalsh(h), torch.tensor([1.0, 25.0], dtype=dtype), atol=tol, rtol=0)
    angle = torch.tensor(0.5, dtype=dtype)
    expected = 0.5 * ((angle.cos() * 0.3 + angle.sin() * -0.7) ** 2
                      + 25.0 * (-angle.sin() * 0.3 + angle.cos() * -0.7) ** 2)
    # float64: to rounding (1e-13), far closer than a float32 cos and sin would get (about 1e-8)
    rtol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(L.quadratic(xy, condition=25.0), expected, atol=0, rtol=rtol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_gradients_match_autograd(dtype):
    gen = torch.Generator().manual_seed(3)
    z = (3 * torch.randn(20, 5, generator=gen)).to(dtype).requires_grad_(True)
    y = torch.randint(0, 5, (20,), generator=gen)
    onehot = F.one_hot(y, 5).to(dtype)
    for loss, formula in [(F.cross_entropy(z, y, reduction="sum"), L.softmax_ce_grad),
                          (((z.softmax(1) - onehot) ** 2).sum(), L.softmax_mse_grad),
                          (F.binary_cross_entropy_with_logits(z, onehot, reduction="sum"), L.sigmoid_ce_grad),
                          (((torch.sigmoid(z) - onehot) ** 2).sum(), L.sigmoid_mse_grad)]:
        (grad,) = torch.autograd.grad(loss, z)
        target = y if formula in (L.softmax_ce_grad, L.softmax_mse_grad) else onehot
        torch.testing.assert_close(formula(z.detach(), target), grad)


def test_mse_sigmoid_gradient_vanishes_when_confidently_wrong():
    z, y = torch.tensor([-10.0]), torch.tensor([1.0])
    assert abs(L.sigmoid_mse_grad(z, y).item()) < 1e-4
    assert L.sigmoid_ce_grad(z, y).item() == pytest.approx(-1.0, abs=1e-4)


def test_bad_start_and_steps():
    with pytest.raises(TypeError, match="x0"):
        L.newton(L.rosenbrock, [0.0, 0.0], steps=1)
    with pytest.raises(ValueError, match="steps"):
        L.newton(L.rosenbrock, torch.zeros(2), steps=-1)


@pytest.mark.parametrize("call,error,word", [
    (lambda: L.rosenbrock([1.0, 1.0]), TypeError, "xy must be a torch.Tensor"),
    (lambda: L.rosenbrock(torch.tensor([1, 1])), TypeError, "xy must have a floating dtype"),
    (lambda: L.quadratic(torch.zeros(3)), ValueError, r"xy must have shape \[..., 2\]"),
    (lambda: L.quadratic(torch.tensor(1.0)), ValueError, r"xy must have shape"),
    (lambda: L.newton(L.rosenbrock, torch.zeros(1, 2), steps=1), ValueError, "x0 must be a 1-D tensor"),
    (lambda: L.newton(L.rosenbrock, torch.zeros(2, dtype=torch.long), steps=1), TypeError, "x0 must have a floating"),
    (lambda: L.newton(L.rosenbrock, torch.zeros(2), steps=1.5), TypeError, "steps must be an int"),
    (lambda: L.minimize(L.rosenbrock, torch.zeros(2), lambda p: optimizers.SGD(p), -2), ValueError, "steps"),
    (lambda: L.softmax_ce_grad(torch.zeros(4, 3), torch.zeros(4)), TypeError, "target must hold integer"),
    (lambda: L.softmax_mse_grad(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long)), ValueError, "target \\[N\\]"),
    (lambda: L.softmax_ce_grad(torch.zeros(4, 3), torch.full((4,), 3)), ValueError, r"class indices in \[0, 3\)"),
    (lambda: L.softmax_ce_grad(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long)), TypeError,
     "logits must have a floating"),
    (lambda: L.sigmoid_ce_grad(torch.zeros(4), torch.ones(4, dtype=torch.long)), TypeError,
     "target must have a floating"),
    (lambda: L.sigmoid_mse_grad(torch.zeros(4), torch.ones(3)), ValueError, "target must have the shape of logits"),
])
def test_bad_input_names_the_argument(call, error, word):
    with pytest.raises(error, match=word):
        call()


def test_surfaces_broadcast_over_leading_dimensions():
    grid = torch.stack(torch.meshgrid(torch.linspace(-2, 2, 5), torch.linspace(-1, 3, 4), indexing="ij"), dim=-1)
    for f in (L.rosenbrock, L.quadratic):
        values = f(grid)  # [5, 4, 2] -> [5, 4]
        assert values.shape == (5, 4)
        torch.testing.assert_close(values[2, 1], f(grid[2, 1]))
