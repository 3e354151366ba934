"""Optimizers from scratch: SGD, AdaGrad, Adadelta, RMSProp, Adam, AdamW, NAdam (chapter 08).

Every optimizer here is a ``torch.optim.Optimizer`` subclass whose ``step`` is the update rule,
the math in its docstring, written as torch's own for-loop implementation writes it
(``_single_tensor_sgd``, ``_single_tensor_adam``, ...): one readable loop over the parameters,
each update made *in place* with fused tensor methods (``mul_``, ``add_(x, alpha=)``,
``addcmul_``, ``addcdiv_``, ``lerp_``), so no step allocates more than a temporary or two and
the rounding is torch's. Signatures, names of hyper-parameters, param-group keys and
per-parameter state follow ``torch.optim`` 2.14 (``momentum_buffer``, ``exp_avg``, ...), and
the tests hold each one to its twin on torch's own optimizer test database (``optim_db``).

Also as in torch: ``maximize=True`` flips the gradient's sign first (gradient ascent), ``lr``
may be a one-element tensor, ``Adam``/``NAdam`` take ``decoupled_weight_decay`` (``AdamW`` is
``Adam`` with it on), and ``step(closure)`` re-evaluates the loss and returns it.

Deliberate teaching simplifications: the keywords are accepted with their default (or a
``False`` that means the same thing) and any other value raises ``ValueError`` naming it:

* ``foreach=True`` (all tensors in a few multi-tensor kernels) and ``fused=True`` (one compiled
  kernel): the speed-ups, not the algorithm; the loop here is the for-loop implementation;
* ``capturable=True`` (state on the device, for CUDA graphs) and ``differentiable=True``
  (autograd through the step, for meta-learning);
* hyper-parameters other than ``lr`` as tensors (``betas``, ``weight_decay``).

Complex parameters raise ``TypeError`` and sparse gradients ``ValueError``. ``step`` is kept as a
Python ``int`` (torch keeps a scalar tensor; ``load_state_dict`` works both ways), and AdaGrad
creates its state at the first step, not in its constructor as torch does.

Conventions of torch worth knowing (each one is a test):

* SGD's momentum buffer starts as the first gradient itself, without the ``1 - dampening``
  factor; the learning rate multiplies the buffer at each step (not folded into it), so changing
  ``lr`` mid-run rescales the whole velocity.
* Adam's ``eps`` is added *outside* the square root, to the bias-corrected ``sqrt(v_hat)``;
  Adadelta adds its ``eps`` inside the square roots.
* ``weight_decay`` is an L2 term added to the gradient everywhere except AdamW (or
  ``decoupled_weight_decay=True``), which shrinks the weights directly by ``lr * weight_decay``
  (decoupled, Loshchilov & Hutter 2019).
* NAdam's momentum coefficient grows with the step, ``mu_t = beta1 (1 - 0.5 * 0.96**(t psi))``,
  and torch keeps the running product of the ``mu_t`` in a scalar of its own "scalar dtype":
  float64 when the default dtype (``torch.get_default_dtype()``) is float64, float32 otherwise,
  whatever the parameters' dtype (so do we: the two must agree).

Test surfaces, Newton's method, ``minimize`` and the loss gradients are in :mod:`cvlib.landscapes`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from cvlib import _checks

__all__ = ["SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "NAdam"]

# keyword -> the values that mean "the plain for-loop implementation" (see the module docstring)
_FOR_LOOP_ONLY = {"foreach": (None, False), "fused": (None, False), "capturable": (False,),
                  "differentiable": (False,)}


def _check(name: str, value, low: float = 0.0, high: float | None = None) -> float:
    """``value`` must be a real number in ``[low, high)``; returns it as a float."""
    if isinstance(value, Tensor):
        raise ValueError(f"{name} as a tensor is not implemented in cvlib (only lr may be one); pass a float")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if value < low or (high is not None and value >= high):
        bounds = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return float(value)


def _check_lr(lr) -> float | Tensor:
    """A float ``>= 0`` or, as torch allows, a one-element floating tensor (kept as a tensor)."""
    if not isinstance(lr, Tensor):
        return _check("lr", lr)
    _checks.floating_tensor(lr, "lr")
    if lr.numel() != 1:
        raise ValueError(f"a tensor lr must have one element, got shape {tuple(lr.shape)}")
    if lr.item() < 0:
        raise ValueError(f"lr must be >= 0, got {lr.item()}")
    return lr


def _check_betas(betas) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair of floats, got {betas!r}")
    return _check("betas[0]", betas[0], 0.0, 1.0), _check("betas[1]", betas[1], 0.0, 1.0)


class _Optimizer(torch.optim.Optimizer):
    """Shared loop: for every parameter that has a gradient, call ``_update`` with its state."""

    def add_param_group(self, param_group: dict) -> None:
        """torch's, after refusing what is not implemented (also when a group overrides it)."""
        for key, allowed in _FOR_LOOP_ONLY.items() if isinstance(param_group, dict) else ():
            value = param_group.get(key, self.defaults.get(key, allowed[0]))
            if value not in allowed:
                raise ValueError(
                    f"{key}={value!r} is not implemented in cvlib.optimizers.{type(self).__name__}: it is "
                    f"the readable for-loop version (a teaching simplification); use "
                    f"torch.optim.{type(self).__name__} for {key}")
        super().add_param_group(param_group)
        bad = [p for p in self.param_groups[-1]["params"] if not p.is_floating_point()]  # complex, integer
        if bad:
            self.param_groups.pop()  # leave the optimizer as it was
            _checks.floating_tensor(bad[0], "params")  # TypeError naming the dtype

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
                if p.grad.is_sparse:
                    raise ValueError("sparse gradients are not supported: use torch.optim.SparseAdam")
                grad = -p.grad if group["maximize"] else p.grad  # ascent: the same rule on -g
                self._update(p, grad, self.state[p], group)
        return loss

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError


def _for_loop_defaults(maximize: bool, **flags) -> dict:
    """``maximize`` and the implementation flags the torch twin takes (``foreach``, ...): the same
    param-group keys as torch's, so state dicts load both ways (checked in ``add_param_group``)."""
    return dict(maximize=bool(maximize), **flags)


class SGD(_Optimizer):
    r"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

    $$g \leftarrow g + \lambda\theta, \qquad
      b_t = \begin{cases} g & t = 1 \\ \mu b_{t-1} + (1-\tau) g & t > 1 \end{cases}, \qquad
      \theta \leftarrow \theta - \eta \cdot \begin{cases} g + \mu b_t & \text{Nesterov} \\
      b_t & \text{otherwise} \end{cases}$$

    with ``lr`` $\eta$, ``momentum`` $\mu$, ``dampening`` $\tau$, ``weight_decay`` $\lambda$.
    State: ``momentum_buffer`` (only when $\mu > 0$).
    """

    def __init__(self, params, lr: float | Tensor = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False, fused: bool | None = None) -> None:
        defaults = dict(lr=_check_lr(lr), momentum=_check("momentum", momentum),
                        dampening=_check("dampening", dampening),
                        weight_decay=_check("weight_decay", weight_decay), nesterov=bool(nesterov),
                        **_for_loop_defaults(maximize, foreach=foreach, differentiable=differentiable, fused=fused))
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        mu, wd = group["momentum"], group["weight_decay"]
        if wd != 0:
            grad = grad.add(p, alpha=wd)  # g + lambda theta
        if mu != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.clone()  # first step: no (1 - dampening)
            else:
                state["momentum_buffer"].mul_(mu).add_(grad, alpha=1 - group["dampening"])  # mu b + (1 - tau) g
            buf = state["momentum_buffer"]
            grad = grad.add(buf, alpha=mu) if group["nesterov"] else buf
        p.add_(grad, alpha=-group["lr"])


class Adagrad(_Optimizer):
    r"""AdaGrad (Duchi et al. 2011): each coordinate's step shrinks with its gradient history.

    $$g \leftarrow g + \lambda\theta, \quad s_t = s_{t-1} + g^2, \quad
      \theta \leftarrow \theta - \frac{\eta}{1 + (t-1)\,\delta}\,\frac{g}{\sqrt{s_t} + \epsilon}$$

    with ``lr_decay`` $\delta$ and $s_0$ = ``initial_accumulator_value``. State: ``step``, ``sum``.
    """

    def __init__(self, params, lr: float | Tensor = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False, fused: bool | None = None) -> None:
        defaults = dict(lr=_check_lr(lr), lr_decay=_check("lr_decay", lr_decay),
                        weight_decay=_check("weight_decay", weight_decay),
                        initial_accumulator_value=_check("initial_accumulator_value",
                                                         initial_accumulator_value),
                        eps=_check("eps", eps),
                        **_for_loop_defaults(maximize, foreach=foreach, differentiable=differentiable, fused=fused))
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["sum"] = torch.full_like(p, group["initial_accumulator_value"])
        state["step"] = t = int(state["step"]) + 1
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        lr_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        state["sum"].addcmul_(grad, grad)  # s += g^2
        std = state["sum"].sqrt().add_(group["eps"])
        p.addcdiv_(grad, std, value=-lr_t)


class Adadelta(_Optimizer):
    r"""Adadelta (Zeiler 2012): RMSProp whose step size comes from past steps, not from ``lr``.

    $$v_t = \rho v_{t-1} + (1-\rho) g^2, \quad
      \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g, \quad
      u_t = \rho u_{t-1} + (1-\rho)\Delta_t^2, \quad \theta \leftarrow \theta - \eta\,\Delta_t$$

    ($g$ includes $\lambda\theta$; the paper has no $\eta$: torch's ``lr=1.0`` is that case).
    ``eps`` sits *inside* both square roots. State: ``step``, ``square_avg`` ($v$), ``acc_delta`` ($u$).
    """

    def __init__(self, params, lr: float | Tensor = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, foreach: bool | None = None, *, capturable: bool = False,
                 maximize: bool = False, differentiable: bool = False) -> None:
        if isinstance(rho, (int, float)) and not isinstance(rho, bool) and rho > 1:
            raise ValueError(f"rho must be in [0, 1], got {rho}")
        defaults = dict(lr=_check_lr(lr), rho=_check("rho", rho),
                        eps=_check("eps", eps), weight_decay=_check("weight_decay", weight_decay),
                        **_for_loop_defaults(maximize, foreach=foreach, capturable=capturable,
                                             differentiable=differentiable))
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        if not state:
            state.update(step=0, square_avg=torch.zeros_like(p), acc_delta=torch.zeros_like(p))
        state["step"] = int(state["step"]) + 1
        rho, eps = group["rho"], group["eps"]
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        v, u = state["square_avg"], state["acc_delta"]
        v.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        delta = u.add(eps).sqrt_().div_(v.add(eps).sqrt_()).mul_(grad)  # sqrt(u + eps) / sqrt(v + eps) * g
        u.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        p.add_(delta, alpha=-group["lr"])


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

    def __init__(self, params, lr: float | Tensor = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 capturable: bool = False, foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False) -> None:
        defaults = dict(lr=_check_lr(lr), alpha=_check("alpha", alpha), eps=_check("eps", eps),
                        weight_decay=_check("weight_decay", weight_decay),
                        momentum=_check("momentum", momentum), centered=bool(centered),
                        **_for_loop_defaults(maximize, foreach=foreach, capturable=capturable,
                                             differentiable=differentiable))
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
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        v = state["square_avg"]
        v.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if group["centered"]:
            m = state["grad_avg"]
            m.lerp_(grad, 1 - alpha)  # alpha m + (1 - alpha) g
            denom = v.addcmul(m, m, value=-1).sqrt_()  # sqrt(v - m^2)
        else:
            denom = v.sqrt()
        denom.add_(group["eps"])
        if mu > 0:
            buf = state["momentum_buffer"]
            buf.mul_(mu).addcdiv_(grad, denom)
            p.add_(buf, alpha=-group["lr"])
        else:
            p.addcdiv_(grad, denom, value=-group["lr"])


class Adam(_Optimizer):
    r"""Adam (Kingma & Ba 2015), optionally AMSGrad (Reddi et al. 2018).

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2, \quad
      \theta \leftarrow \theta - \eta\, \frac{m_t / (1-\beta_1^t)}{\sqrt{\hat v_t / (1-\beta_2^t)} + \epsilon}$$

    where $\hat v_t = v_t$, or $\max(\hat v_{t-1}, v_t)$ with AMSGrad. ``weight_decay`` adds
    $\lambda\theta$ to $g$ (L2), or with ``decoupled_weight_decay=True`` shrinks $\theta$ by
    $1 - \eta\lambda$ first (see :class:`AdamW`). ``eps`` is outside the square root.
    State: ``step``, ``exp_avg`` ($m$), ``exp_avg_sq`` ($v$), ``max_exp_avg_sq`` (AMSGrad).
    """

    def __init__(self, params, lr: float | Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False) -> None:
        defaults = dict(lr=_check_lr(lr), betas=_check_betas(betas), eps=_check("eps", eps),
                        weight_decay=_check("weight_decay", weight_decay), amsgrad=bool(amsgrad),
                        decoupled_weight_decay=bool(decoupled_weight_decay),
                        **_for_loop_defaults(maximize, foreach=foreach, capturable=capturable,
                                             differentiable=differentiable, fused=fused))
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        (beta1, beta2), lr, wd = group["betas"], group["lr"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        state["step"] = t = int(state["step"]) + 1
        if wd != 0 and group["decoupled_weight_decay"]:
            p.mul_(1 - lr * wd)  # theta <- theta (1 - lr lambda), g untouched
        elif wd != 0:
            grad = grad.add(p, alpha=wd)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(grad, 1 - beta1)  # beta1 m + (1 - beta1) g
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # beta2 v + (1 - beta2) g^2
        if group["amsgrad"]:
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        denom = (v.sqrt() / (1 - beta2 ** t) ** 0.5).add_(group["eps"])  # sqrt(v_hat) + eps
        p.addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))  # m_hat = m / (1 - beta1^t)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter 2019): before the Adam step,
    $\theta \leftarrow \theta (1 - \eta\lambda)$, and $g$ is the plain gradient. torch ties the
    decay to ``lr`` (the paper scales it by the schedule multiplier only). Default $\lambda = 0.01$."""

    def __init__(self, params, lr: float | Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)


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

    with $m_t, v_t$ as in Adam, ``momentum_decay`` $\psi$, and $g$ including $\lambda\theta$
    (or, with ``decoupled_weight_decay=True``, $\theta$ shrunk by $1 - \eta\lambda$ first).
    State: ``step``, ``mu_product`` (a scalar in torch's scalar dtype: float64 under a float64
    default dtype, float32 otherwise, whatever the parameters' dtype), ``exp_avg``, ``exp_avg_sq``.
    """

    def __init__(self, params, lr: float | Tensor = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False) -> None:
        defaults = dict(lr=_check_lr(lr), betas=_check_betas(betas), eps=_check("eps", eps),
                        weight_decay=_check("weight_decay", weight_decay),
                        momentum_decay=_check("momentum_decay", momentum_decay),
                        decoupled_weight_decay=bool(decoupled_weight_decay),
                        **_for_loop_defaults(maximize, foreach=foreach, capturable=capturable,
                                             differentiable=differentiable))
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        (beta1, beta2), lr, wd, psi = group["betas"], group["lr"], group["weight_decay"], group["momentum_decay"]
        if not state:
            state.update(step=0, mu_product=torch.ones((), dtype=_scalar_dtype()),
                         exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        state["step"] = t = int(state["step"]) + 1
        if wd != 0 and group["decoupled_weight_decay"]:
            p.mul_(1 - lr * wd)
        elif wd != 0:
            grad = grad.add(p, alpha=wd)
        mu = beta1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        state["mu_product"] = state["mu_product"] * mu  # in the scalar dtype, like torch
        mu_prod = float(state["mu_product"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(grad, 1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = v.div(1 - beta2 ** t).sqrt_().add_(group["eps"])  # sqrt(v_hat) + eps
        p.addcdiv_(grad, denom, value=-lr * (1 - mu) / (1 - mu_prod))
        p.addcdiv_(m, denom, value=-lr * mu_next / (1 - mu_prod * mu_next))
