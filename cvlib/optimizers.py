"""Optimizers from scratch, Newton's method, test surfaces and loss gradients (chapter 08).

Every optimizer here is a ``torch.optim.Optimizer`` subclass whose ``step`` is the update rule
written with plain tensor operations, the math in its docstring. Names of arguments and of
per-parameter state follow ``torch.optim`` (``momentum_buffer``, ``exp_avg``, ...), and the
tests check that each one matches its ``torch.optim`` twin step for step: parameters and state,
over many steps, in float32 and float64. Options torch has and these leave out: ``maximize``,
``foreach``/``fused``, ``capturable``, ``differentiable``, tensor learning rates, sparse and
complex gradients.

Conventions of torch worth knowing (each one is a test):

* SGD's momentum buffer starts as the first gradient itself, without the ``1 - dampening``
  factor; the learning rate multiplies the buffer at each step (not folded into it), so changing
  ``lr`` mid-run rescales the whole velocity.
* Adam's ``eps`` is added *outside* the square root, to the bias-corrected ``sqrt(v_hat)``;
  Adadelta adds its ``eps`` inside the square roots.
* ``weight_decay`` is an L2 term added to the gradient everywhere except AdamW, which shrinks the
  weights directly by ``lr * weight_decay`` (decoupled, Loshchilov & Hutter 2019).
* NAdam's momentum coefficient grows with the step, ``mu_t = beta1 (1 - 0.5 * 0.96**(t psi))``,
  and torch keeps the running product of the ``mu_t`` in a scalar of its own "scalar dtype":
  float64 when the default dtype (``torch.get_default_dtype()``) is float64, float32 otherwise,
  whatever the parameters' dtype (so do we: the two must agree).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "NAdam",
    "newton", "minimize", "rosenbrock", "quadratic",
    "softmax_ce_grad", "softmax_mse_grad", "sigmoid_ce_grad", "sigmoid_mse_grad",
]


def _check(name: str, value, low: float = 0.0, high: float | None = None) -> float:
    """``value`` must be a real number in ``[low, high)``; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if value < low or (high is not None and value >= high):
        bounds = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return float(value)


class _Optimizer(torch.optim.Optimizer):
    """Shared loop: for every parameter that has a gradient, call ``_update`` with its state."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:  # not used by the loss: no update, no state
                    continue
                if p.grad.is_sparse or p.is_complex():
                    raise ValueError("sparse gradients and complex parameters are not supported")
                self._update(p, p.grad, self.state[p], group)
        return loss

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError


class SGD(_Optimizer):
    r"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

    $$g \leftarrow g + \lambda\theta, \qquad
      b_t = \begin{cases} g & t = 1 \\ \mu b_{t-1} + (1-\tau) g & t > 1 \end{cases}, \qquad
      \theta \leftarrow \theta - \eta \cdot \begin{cases} g + \mu b_t & \text{Nesterov} \\
      b_t & \text{otherwise} \end{cases}$$

    with ``lr`` $\eta$, ``momentum`` $\mu$, ``dampening`` $\tau$, ``weight_decay`` $\lambda$.
    State: ``momentum_buffer`` (only when $\mu > 0$).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        defaults = dict(lr=_check("lr", lr), momentum=_check("momentum", momentum),
                        dampening=_check("dampening", dampening),
                        weight_decay=_check("weight_decay", weight_decay), nesterov=bool(nesterov))
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        mu = group["momentum"]
        g = grad + group["weight_decay"] * p
        if mu != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.clone()  # first step: no (1 - dampening)
            else:
                buf = state["momentum_buffer"]
                buf.copy_(mu * buf + (1 - group["dampening"]) * g)
            buf = state["momentum_buffer"]
            g = g + mu * buf if group["nesterov"] else buf
        p.sub_(group["lr"] * g)


class Adagrad(_Optimizer):
    r"""AdaGrad (Duchi et al. 2011): each coordinate's step shrinks with its gradient history.

    $$g \leftarrow g + \lambda\theta, \quad s_t = s_{t-1} + g^2, \quad
      \theta \leftarrow \theta - \frac{\eta}{1 + (t-1)\,\delta}\,\frac{g}{\sqrt{s_t} + \epsilon}$$

    with ``lr_decay`` $\delta$ and $s_0$ = ``initial_accumulator_value``. State: ``step``, ``sum``.
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        defaults = dict(lr=_check("lr", lr), lr_decay=_check("lr_decay", lr_decay),
                        weight_decay=_check("weight_decay", weight_decay),
                        initial_accumulator_value=_check("initial_accumulator_value",
                                                         initial_accumulator_value),
                        eps=_check("eps", eps))
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["sum"] = torch.full_like(p, group["initial_accumulator_value"])
        state["step"] = t = int(state["step"]) + 1
        g = grad + group["weight_decay"] * p
        state["sum"].add_(g * g)
        lr_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        p.sub_(lr_t * g / (state["sum"].sqrt() + group["eps"]))


class Adadelta(_Optimizer):
    r"""Adadelta (Zeiler 2012): RMSProp whose step size comes from past steps, not from ``lr``.

    $$v_t = \rho v_{t-1} + (1-\rho) g^2, \quad
      \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g, \quad
      u_t = \rho u_{t-1} + (1-\rho)\Delta_t^2, \quad \theta \leftarrow \theta - \eta\,\Delta_t$$

    ($g$ includes $\lambda\theta$; the paper has no $\eta$: torch's ``lr=1.0`` is that case).
    ``eps`` sits *inside* both square roots. State: ``step``, ``square_avg`` ($v$), ``acc_delta`` ($u$).
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0) -> None:
        if isinstance(rho, (int, float)) and not isinstance(rho, bool) and rho > 1:
            raise ValueError(f"rho must be in [0, 1], got {rho}")
        defaults = dict(lr=_check("lr", lr), rho=_check("rho", rho),
                        eps=_check("eps", eps), weight_decay=_check("weight_decay", weight_decay))
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        if not state:
            state.update(step=0, square_avg=torch.zeros_like(p), acc_delta=torch.zeros_like(p))
        state["step"] = int(state["step"]) + 1
        rho, eps = group["rho"], group["eps"]
        g = grad + group["weight_decay"] * p
        v, u = state["square_avg"], state["acc_delta"]
        v.copy_(rho * v + (1 - rho) * g * g)
        delta = (u + eps).sqrt() / (v + eps).sqrt() * g
        u.copy_(rho * u + (1 - rho) * delta * delta)
        p.sub_(group["lr"] * delta)


class RMSprop(_Optimizer):
    r"""RMSProp (Hinton's lecture 6e, 2012), optionally centered (Graves 2013) and with momentum.

    $$v_t = \alpha v_{t-1} + (1-\alpha) g^2, \qquad
      d_t = \sqrt{v_t - \bar g_t^{\,2}} + \epsilon \ \text{(centered, } \bar g_t = \alpha \bar g_{t-1}
      + (1-\alpha) g) \quad\text{or}\quad d_t = \sqrt{v_t} + \epsilon$$
    $$\text{momentum } \mu > 0:\ b_t = \mu b_{t-1} + g / d_t,\ \theta \leftarrow \theta - \eta b_t;
      \qquad \text{else } \theta \leftarrow \theta - \eta\, g / d_t$$

    ($g$ includes $\lambda\theta$.) State: ``step``, ``square_avg``, ``grad_avg`` (centered),
    ``momentum_buffer`` ($\mu > 0$).
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        defaults = dict(lr=_check("lr", lr), alpha=_check("alpha", alpha), eps=_check("eps", eps),
                        weight_decay=_check("weight_decay", weight_decay),
                        momentum=_check("momentum", momentum), centered=bool(centered))
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        alpha, mu = group["alpha"], group["momentum"]
        if not state:
            state.update(step=0, square_avg=torch.zeros_like(p))
            if mu > 0:
                state["momentum_buffer"] = torch.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
        state["step"] = int(state["step"]) + 1
        g = grad + group["weight_decay"] * p
        v = state["square_avg"]
        v.copy_(alpha * v + (1 - alpha) * g * g)
        if group["centered"]:
            m = state["grad_avg"]
            m.copy_(alpha * m + (1 - alpha) * g)
            denom = (v - m * m).sqrt() + group["eps"]
        else:
            denom = v.sqrt() + group["eps"]
        if mu > 0:
            buf = state["momentum_buffer"]
            buf.copy_(mu * buf + g / denom)
            p.sub_(group["lr"] * buf)
        else:
            p.sub_(group["lr"] * g / denom)


class Adam(_Optimizer):
    r"""Adam (Kingma & Ba 2015), optionally AMSGrad (Reddi et al. 2018).

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2, \quad
      \theta \leftarrow \theta - \eta\, \frac{m_t / (1-\beta_1^t)}{\sqrt{\hat v_t / (1-\beta_2^t)} + \epsilon}$$

    where $\hat v_t = v_t$, or $\max(\hat v_{t-1}, v_t)$ with AMSGrad. ``weight_decay`` adds
    $\lambda\theta$ to $g$ (L2; see :class:`AdamW` for the decoupled form). ``eps`` is outside the
    square root. State: ``step``, ``exp_avg`` ($m$), ``exp_avg_sq`` ($v$), ``max_exp_avg_sq``.
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats, got {betas!r}")
        betas = (_check("betas[0]", betas[0], 0.0, 1.0), _check("betas[1]", betas[1], 0.0, 1.0))
        defaults = dict(lr=_check("lr", lr), betas=betas, eps=_check("eps", eps),
                        weight_decay=_check("weight_decay", weight_decay), amsgrad=bool(amsgrad))
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        (beta1, beta2), lr, wd = group["betas"], group["lr"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        state["step"] = t = int(state["step"]) + 1
        if self.decoupled_weight_decay:
            p.mul_(1 - lr * wd)
            g = grad
        else:
            g = grad + wd * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.copy_(beta1 * m + (1 - beta1) * g)
        v.copy_(beta2 * v + (1 - beta2) * g * g)
        if group["amsgrad"]:
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        p.sub_(lr * m_hat / (v_hat.sqrt() + group["eps"]))


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter 2019): before the Adam step,
    $\theta \leftarrow \theta (1 - \eta\lambda)$, and $g$ is the plain gradient. torch ties the
    decay to ``lr`` (the paper scales it by the schedule multiplier only). Default $\lambda = 0.01$."""

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


def _scalar_dtype() -> torch.dtype:
    """The dtype torch.optim keeps its scalar state in (``torch.optim.optimizer._get_scalar_dtype``):
    float64 when the default dtype is float64, else float32, whatever the parameters' dtype."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class NAdam(_Optimizer):
    r"""NAdam (Dozat 2016): Adam with Nesterov momentum and a momentum schedule.

    $$\mu_t = \beta_1\left(1 - \tfrac12\, 0.96^{\,t\psi}\right), \quad
      \theta \leftarrow \theta - \eta\left[\frac{(1-\mu_t)\, g}{1 - \prod_{i\le t}\mu_i}
      + \frac{\mu_{t+1}\, m_t}{1 - \prod_{i \le t+1}\mu_i}\right] \Big/
      \left(\sqrt{v_t/(1-\beta_2^t)} + \epsilon\right)$$

    with $m_t, v_t$ as in Adam, ``momentum_decay`` $\psi$, and $g$ including $\lambda\theta$.
    State: ``step``, ``mu_product`` (a scalar in torch's scalar dtype: float64 under a float64
    default dtype, float32 otherwise, whatever the parameters' dtype), ``exp_avg``, ``exp_avg_sq``.
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3) -> None:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats, got {betas!r}")
        betas = (_check("betas[0]", betas[0], 0.0, 1.0), _check("betas[1]", betas[1], 0.0, 1.0))
        defaults = dict(lr=_check("lr", lr), betas=betas, eps=_check("eps", eps),
                        weight_decay=_check("weight_decay", weight_decay),
                        momentum_decay=_check("momentum_decay", momentum_decay))
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        (beta1, beta2), lr, psi = group["betas"], group["lr"], group["momentum_decay"]
        if not state:
            state.update(step=0, mu_product=torch.ones((), dtype=_scalar_dtype()),
                         exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        state["step"] = t = int(state["step"]) + 1
        g = grad + group["weight_decay"] * p
        mu = beta1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        state["mu_product"] = state["mu_product"] * mu  # in the scalar dtype, like torch
        mu_prod = float(state["mu_product"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.copy_(beta1 * m + (1 - beta1) * g)
        v.copy_(beta2 * v + (1 - beta2) * g * g)
        denom = (v / (1 - beta2 ** t)).sqrt() + group["eps"]
        p.sub_(lr * (1 - mu) / (1 - mu_prod) * g / denom)
        p.sub_(lr * mu_next / (1 - mu_prod * mu_next) * m / denom)


# --- second order and small problems ----------------------------------------------------

def rosenbrock(xy: Tensor, a: float = 1.0, b: float = 100.0) -> Tensor:
    """Rosenbrock's banana ``(a - x)^2 + b (y - x^2)^2``; ``xy[..., 2]`` -> ``[...]``, minimum 0 at (a, a^2)."""
    x, y = xy[..., 0], xy[..., 1]
    return (a - x) ** 2 + b * (y - x * x) ** 2


def quadratic(xy: Tensor, condition: float = 20.0, angle: float = 0.5) -> Tensor:
    """``0.5 * (u^2 + condition * w^2)`` with ``(u, w)`` = ``xy`` rotated by ``angle`` radians.

    ``xy[..., 2]`` -> ``[...]``. Hessian eigenvalues 1 and ``condition`` (its condition
    number); the valley is tilted, so no coordinate-wise method can align with it. Minimum 0 at 0.
    The rotation is computed in ``xy``'s dtype (a float64 surface is rotated in float64).
    """
    theta = torch.tensor(angle, dtype=xy.dtype, device=xy.device)
    c, s = torch.cos(theta), torch.sin(theta)
    u = c * xy[..., 0] + s * xy[..., 1]
    w = -s * xy[..., 0] + c * xy[..., 1]
    return 0.5 * (u * u + condition * w * w)


def _check_start(x0) -> Tensor:
    if not isinstance(x0, Tensor) or x0.ndim != 1 or not x0.is_floating_point():
        raise TypeError(f"x0 must be a 1-D floating tensor, got {x0!r}")
    return x0


def newton(f: Callable[[Tensor], Tensor], x0: Tensor, steps: int, damping: float = 0.0) -> Tensor:
    r"""Newton's method: $x \leftarrow x - (\nabla^2 f(x) + \text{damping}\, I)^{-1} \nabla f(x)$.

    ``f`` maps ``x[n]`` to a scalar; gradient and Hessian come from autograd.
    Returns the path ``[steps + 1, n]`` (row 0 is ``x0``). Costs one ``n x n`` Hessian and one
    linear solve per step: fine for small ``n``, the reason nobody does this for a network.
    """
    x0 = _check_start(x0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    path = [x0.detach().clone()]
    x = path[0]
    eye = torch.eye(len(x), dtype=x.dtype)
    for _ in range(steps):
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(xg), xg)  # [n]
        h = torch.autograd.functional.hessian(f, x)  # [n, n]
        x = x - torch.linalg.solve(h + damping * eye, g)
        path.append(x.detach().clone())
    return torch.stack(path)


def minimize(f: Callable[[Tensor], Tensor], x0: Tensor, make_optimizer: Callable, steps: int
             ) -> tuple[Tensor, int]:
    """Run ``make_optimizer([x])`` on ``f`` for ``steps`` calls of ``.step(closure)``.

    Works for every optimizer here and in ``torch.optim``, ``LBFGS`` included (it calls the
    closure several times per step). Returns the path ``[steps + 1, n]`` and the number of
    evaluations of ``f`` (with its gradient) made.
    """
    x = _check_start(x0).detach().clone().requires_grad_(True)
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

def softmax_ce_grad(logits: Tensor, target: Tensor) -> Tensor:
    """d/dz of ``F.cross_entropy(z, target, reduction='sum')``: ``softmax(z) - onehot``. ``[N, C]``."""
    return logits.softmax(dim=1) - F.one_hot(target, logits.shape[1]).to(logits.dtype)


def softmax_mse_grad(logits: Tensor, target: Tensor) -> Tensor:
    r"""d/dz of $\sum_{i,c} (p_{ic} - y_{ic})^2$ with $p = \mathrm{softmax}(z)$, $y$ one-hot. ``[N, C]``.

    The softmax Jacobian $\partial p_c / \partial z_j = p_c(\delta_{cj} - p_j)$ gives
    $\partial L / \partial z_j = 2 p_j \left[(p_j - y_j) - \sum_c p_c (p_c - y_c)\right]$.
    """
    p = logits.softmax(dim=1)  # [N, C]
    r = p - F.one_hot(target, logits.shape[1]).to(logits.dtype)  # [N, C]
    return 2 * p * (r - (p * r).sum(dim=1, keepdim=True))


def sigmoid_ce_grad(logits: Tensor, target: Tensor) -> Tensor:
    """d/dz of binary cross-entropy on ``sigmoid(z)`` (summed): ``sigmoid(z) - y``. Same shape as z."""
    return torch.sigmoid(logits) - target


def sigmoid_mse_grad(logits: Tensor, target: Tensor) -> Tensor:
    """d/dz of ``(sigmoid(z) - y)^2`` (summed): ``2 (s - y) s (1 - s)``; vanishes where s saturates."""
    s = torch.sigmoid(logits)
    return 2 * (s - target) * s * (1 - s)
