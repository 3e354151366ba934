"""What an optimizer walks on: test surfaces, Newton's method, ``minimize``, loss gradients (chapter 08).

* Two 2-D test surfaces, :func:`rosenbrock` (a curved valley) and :func:`quadratic` (a tilted,
  ill-conditioned bowl), each mapping points ``xy[..., 2]`` to values ``[...]``.
* :func:`newton` (second order, Hessian from autograd) and :func:`minimize` (any
  ``torch.optim``-style optimizer driven through ``step(closure)``, L-BFGS included) return the
  path they take, ``[steps + 1, n]``.
* The gradients four classification losses give the logits, in closed form: why cross-entropy
  keeps pushing a confidently wrong output while squared error on a softmax or sigmoid stalls.

The optimizers themselves are in :mod:`cvlib.optimizers`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from cvlib import _checks

__all__ = [
    "rosenbrock", "quadratic", "newton", "minimize",
    "softmax_ce_grad", "softmax_mse_grad", "sigmoid_ce_grad", "sigmoid_mse_grad",
]


# --- test surfaces --------------------------------------------------------------------------

def _points(xy, name: str = "xy") -> Tensor:
    """``xy`` as a floating tensor of 2-D points ``[..., 2]``."""
    _checks.floating_tensor(xy, name)
    if xy.ndim == 0 or xy.shape[-1] != 2:
        raise ValueError(f"{name} must have shape [..., 2] (points (x, y)), got {tuple(xy.shape)}")
    return xy


def rosenbrock(xy: Tensor, a: float = 1.0, b: float = 100.0) -> Tensor:
    """Rosenbrock's banana ``(a - x)^2 + b (y - x^2)^2``; ``xy[..., 2]`` -> ``[...]``, minimum 0 at (a, a^2)."""
    x, y = _points(xy)[..., 0], xy[..., 1]
    return (a - x) ** 2 + b * (y - x * x) ** 2


def quadratic(xy: Tensor, condition: float = 20.0, angle: float = 0.5) -> Tensor:
    """``0.5 * (u^2 + condition * w^2)`` with ``(u, w)`` = ``xy`` rotated by ``angle`` radians.

    ``xy[..., 2]`` -> ``[...]``. Hessian eigenvalues 1 and ``condition`` (its condition
    number); the valley is tilted, so no coordinate-wise method can align with it. Minimum 0 at 0.
    The rotation is computed in ``xy``'s dtype (a float64 surface is rotated in float64).
    """
    theta = torch.tensor(angle, dtype=_points(xy).dtype, device=xy.device)
    c, s = torch.cos(theta), torch.sin(theta)
    u = c * xy[..., 0] + s * xy[..., 1]
    w = -s * xy[..., 0] + c * xy[..., 1]
    return 0.5 * (u * u + condition * w * w)


# --- walking a surface ------------------------------------------------------------------------

def _start(x0) -> Tensor:
    """``x0`` as a 1-D floating tensor (the starting point ``[n]``)."""
    _checks.floating_tensor(x0, "x0")
    if x0.ndim != 1:
        raise ValueError(f"x0 must be a 1-D tensor [n], got shape {tuple(x0.shape)}")
    return x0


def _steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"steps must be an int, got {type(steps).__name__}")
    if steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps}")
    return steps


def newton(f: Callable[[Tensor], Tensor], x0: Tensor, steps: int, damping: float = 0.0) -> Tensor:
    r"""Newton's method: $x \leftarrow x - (\nabla^2 f(x) + \text{damping}\, I)^{-1} \nabla f(x)$.

    ``f`` maps ``x[n]`` to a scalar; gradient and Hessian come from autograd.
    Returns the path ``[steps + 1, n]`` (row 0 is ``x0``). Costs one ``n x n`` Hessian and one
    linear solve per step: fine for small ``n``, the reason nobody does this for a network.
    """
    x = _start(x0).detach().clone()
    path = [x]
    eye = torch.eye(len(x), dtype=x.dtype, device=x.device)
    for _ in range(_steps(steps)):
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(xg), xg)  # [n]
        h = torch.autograd.functional.hessian(f, x)  # [n, n]
        x = x - torch.linalg.solve(h + damping * eye, g)
        path.append(x.detach().clone())
    return torch.stack(path)


def minimize(f: Callable[[Tensor], Tensor], x0: Tensor, make_optimizer: Callable, steps: int
             ) -> tuple[Tensor, int]:
    """Run ``make_optimizer([x])`` on ``f`` for ``steps`` calls of ``.step(closure)``.

    Works for every optimizer in :mod:`cvlib.optimizers` and in ``torch.optim``, ``LBFGS``
    included (it calls the closure several times per step). Returns the path ``[steps + 1, n]``
    and the number of evaluations of ``f`` (with its gradient) made.
    """
    x = _start(x0).detach().clone().requires_grad_(True)
    steps = _steps(steps)
    optimizer = make_optimizer([x])
    evaluations = 0

    def closure() -> Tensor:
        nonlocal evaluations
        evaluations += 1
        optimizer.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    path = [x.detach().clone()]
    for _ in range(steps):
        optimizer.step(closure)
        path.append(x.detach().clone())
    return torch.stack(path), evaluations


# --- gradients of classification losses with respect to the logits ------------------------

def _logits_and_labels(logits, target) -> tuple[Tensor, Tensor]:
    """``logits[N, C]`` (floating) and ``target[N]`` class indices in ``[0, C)``."""
    _checks.floating_tensor(logits, "logits")
    _checks.index_tensor(target, "target")
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"logits must be [N, C] and target [N], got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    if target.numel() and (target.min() < 0 or target.max() >= logits.shape[1]):
        raise ValueError(f"target must hold class indices in [0, {logits.shape[1]}), got values in "
                         f"[{int(target.min())}, {int(target.max())}]")
    return logits, target


def _logits_and_probabilities(logits, target) -> tuple[Tensor, Tensor]:
    """``logits`` and ``target`` (labels in [0, 1]) of one floating dtype and the same shape."""
    _checks.floating_tensor(logits, "logits")
    _checks.floating_tensor(target, "target")
    if target.shape != logits.shape:
        raise ValueError(f"target must have the shape of logits {tuple(logits.shape)}, got {tuple(target.shape)}")
    return logits, target


def softmax_ce_grad(logits: Tensor, target: Tensor) -> Tensor:
    """d/dz of ``F.cross_entropy(z, target, reduction='sum')``: ``softmax(z) - onehot``. ``[N, C]``."""
    logits, target = _logits_and_labels(logits, target)
    return logits.softmax(dim=1) - F.one_hot(target, logits.shape[1]).to(logits.dtype)


def softmax_mse_grad(logits: Tensor, target: Tensor) -> Tensor:
    r"""d/dz of $\sum_{i,c} (p_{ic} - y_{ic})^2$ with $p = \mathrm{softmax}(z)$, $y$ one-hot. ``[N, C]``.

    The softmax Jacobian $\partial p_c / \partial z_j = p_c(\delta_{cj} - p_j)$ gives
    $\partial L / \partial z_j = 2 p_j \left[(p_j - y_j) - \sum_c p_c (p_c - y_c)\right]$.
    """
    logits, target = _logits_and_labels(logits, target)
    p = logits.softmax(dim=1)  # [N, C]
    r = p - F.one_hot(target, logits.shape[1]).to(logits.dtype)  # [N, C]
    return 2 * p * (r - (p * r).sum(dim=1, keepdim=True))


def sigmoid_ce_grad(logits: Tensor, target: Tensor) -> Tensor:
    """d/dz of binary cross-entropy on ``sigmoid(z)`` (summed): ``sigmoid(z) - y``. Same shape as z."""
    logits, target = _logits_and_probabilities(logits, target)
    return torch.sigmoid(logits) - target


def sigmoid_mse_grad(logits: Tensor, target: Tensor) -> Tensor:
    """d/dz of ``(sigmoid(z) - y)^2`` (summed): ``2 (s - y) s (1 - s)``; vanishes where s saturates."""
    logits, target = _logits_and_probabilities(logits, target)
    s = torch.sigmoid(logits)
    return 2 * (s - target) * s * (1 - s)
