"""Activation functions built from elementary tensor operations (chapter 07).

Each activation is a function with ``torch.nn.functional``'s name and arguments, plus a thin
``nn.Module`` with ``torch.nn``'s name that calls it (timm's pattern). Only ``exp``, ``expm1``,
``log``, ``log1p``, ``erf``, ``where``, ``amax``, ``sum`` and arithmetic are used, so autograd
derives every gradient from the formula written here; the tests compare values and gradients
with torch in float32 and float64, including the kinks and inputs of +-1e4.

Conventions (all torch's, checked by the tests):

* **Kinks.** At a point where the function has no derivative, the gradient is the one torch
  returns: ``relu'(0) = 0``, ``relu6' = 0`` at 0 and 6, ``hardsigmoid' = 0`` at +-3,
  ``hardswish'(-3) = 0`` and ``hardswish'(3) = 1``, ``leaky_relu'(0) = negative_slope``,
  ``prelu'(0) = weight``, ``elu'(0) = alpha``, ``selu'(0) = scale * alpha``.
* **No overflow.** No function overflows for a finite input, in forward or backward:
  ``exp`` is only ever applied to numbers <= 0 (or below softplus's threshold), using the
  "safe input" pattern: the branch that ``where`` discards is fed a harmless value, because
  ``where`` multiplies the discarded branch's gradient by 0 and ``0 * inf`` is NaN.
* **Infinities.** +-inf gives torch's value, including NaN where the formula is ``-inf * 0``
  (silu, swish, mish, hardswish and gelu at -inf: torch returns NaN there too).
* **NaN.** A NaN input gives a NaN output (for softmax and friends: a NaN anywhere in a slice
  makes the whole slice NaN). The *gradient* at a NaN input is unspecified: torch itself
  returns NaN, 0, 1 or the slope, depending on the function and even on the code path.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "sigmoid", "hardsigmoid", "softmax", "log_softmax", "logsumexp", "softplus", "tanh",
    "relu", "relu6", "leaky_relu", "prelu", "elu", "selu", "silu", "swish", "hardswish",
    "mish", "gelu", "derivative", "SELU_ALPHA", "SELU_SCALE",
    "Sigmoid", "Hardsigmoid", "Softmax", "LogSoftmax", "Softplus", "Tanh", "ReLU", "ReLU6",
    "LeakyReLU", "PReLU", "ELU", "SELU", "SiLU", "Swish", "Hardswish", "Mish", "GELU",
]

# Klambauer et al. 2017 (self-normalizing networks); the digits are torch's.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _check(input: Tensor) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input must have a floating dtype, got {input.dtype}")


def _check_dim(input: Tensor, dim: int) -> None:
    _check(input)
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    ndim = max(input.ndim, 1)
    if not -ndim <= dim < ndim:
        raise ValueError(f"dim must be in [{-ndim}, {ndim - 1}] for input of shape "
                         f"{tuple(input.shape)}, got {dim}")


def _abs(x: Tensor) -> Tensor:
    # |x| with gradient +1 at 0 (torch.abs has gradient 0 there, which would zero tanh'(0)).
    return torch.where(x >= 0, x, -x)


def sigmoid(input: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``, values in [0, 1]. Same shape and dtype as ``input``."""
    _check(input)
    z = torch.exp(-_abs(input))  # exp(-|x|) in (0, 1]: no overflow for any x
    return torch.where(input >= 0, 1 / (1 + z), z / (1 + z))


def hardsigmoid(input: Tensor) -> Tensor:
    """torch's hard sigmoid ``relu6(x + 3) / 6``: 0 below -3, 1 above 3, slope 1/6 between.
    (Keras before version 3 used ``clip(0.2 x + 0.5, 0, 1)``, slope 1/5: a different function.)"""
    _check(input)
    # Compare x itself with +-3, not x + 3 with 0 and 6: x + 3 rounds (2.9999998 + 3 == 6 in
    # float32), which would move the kink and change the gradient next to it.
    return torch.where(input <= -3, 0.0, torch.where(input >= 3, 1.0, (input + 3) / 6))


def logsumexp(input: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x), dim))`` without overflow: ``m + log(sum(exp(x - m)))``, ``m = max(x)``.
    A slice of all -inf gives -inf and a slice holding +inf gives +inf, as in torch."""
    _check_dim(input, dim)
    m = input.detach().amax(dim=dim, keepdim=True)  # reduced dim kept as size 1
    m = torch.where(m.isinf(), 0.0, m)  # inf - inf would be NaN; exp handles +-inf itself
    out = torch.log(torch.exp(input - m).sum(dim=dim, keepdim=True)) + m
    return out if keepdim else out.squeeze(dim)


def softmax(input: Tensor, dim: int) -> Tensor:
    """``exp(x) / sum(exp(x), dim)``, computed as ``exp(x - max) / sum(exp(x - max))``.

    -inf entries get probability 0. As in torch, a slice with no finite maximum (all -inf, or
    a +inf entry) gives NaN: there is no distribution to return. Same shape as ``input``."""
    _check_dim(input, dim)
    e = torch.exp(input - input.detach().amax(dim=dim, keepdim=True))  # in [0, 1], max is 1
    return e / e.sum(dim=dim, keepdim=True)


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """``x - logsumexp(x)``: exact where ``log(softmax(x))`` underflows to -inf. -inf stays -inf."""
    _check_dim(input, dim)
    shifted = input - input.detach().amax(dim=dim, keepdim=True)  # max entry is 0
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, and exactly ``x`` where ``beta x > threshold`` (torch's
    switch to the linear asymptote; the gap there is ``log1p(exp(-20)) = 2.1e-9``)."""
    _check(input)
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    scaled = beta * input
    linear = scaled > threshold
    safe = torch.where(linear, 0.0, scaled)  # exp never sees the large inputs, even in backward
    return torch.where(linear, input, torch.log1p(torch.exp(safe)) / beta)


def tanh(input: Tensor) -> Tensor:
    """``(e^x - e^-x) / (e^x + e^-x)``, as ``sign(x) * (1 - e^{-2|x|}) / (1 + e^{-2|x|})``."""
    _check(input)
    e = torch.expm1(-2 * _abs(input))  # e^{-2|x|} - 1 in (-1, 0]; expm1 keeps tanh(1e-10) exact
    t = -e / (2 + e)  # tanh(|x|)
    return torch.where(input >= 0, t, -t)


def relu(input: Tensor) -> Tensor:
    """``max(x, 0)``; gradient 0 at 0 (torch's choice of subgradient)."""
    _check(input)
    return torch.where(input <= 0, 0.0, input)  # NaN fails the test and passes through


def relu6(input: Tensor) -> Tensor:
    """``min(max(x, 0), 6)``; gradient 0 at both kinks, 0 and 6."""
    _check(input)
    return torch.where(input <= 0, 0.0, torch.where(input >= 6, 6.0, input))


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise (Maas et al. 2013)."""
    _check(input)
    return torch.where(input > 0, input, negative_slope * input)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """Leaky ReLU with a learned slope (He et al. 2015): ``weight`` is ``Tensor[1]`` (one slope)
    or ``Tensor[C]`` (one per channel, channels on dim 1 of ``input[N, C, *]``)."""
    _check(input)
    if not isinstance(weight, Tensor) or weight.ndim != 1:
        raise ValueError(f"weight must be a 1-d tensor [1] or [C], got {getattr(weight, 'shape', weight)!r}")
    if weight.numel() != 1:
        if input.ndim < 2 or input.shape[1] != weight.numel():
            raise ValueError(f"weight has {weight.numel()} slopes but input {tuple(input.shape)} "
                             f"does not have that many channels on dim 1")
        weight = weight.reshape(-1, *[1] * (input.ndim - 2))  # [C, 1, ...]: broadcasts over N, H, W
    return torch.where(input > 0, input, weight * input)


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    """``x`` for ``x > 0``, ``alpha (e^x - 1)`` otherwise (Clevert et al. 2015)."""
    _check(input)
    negative = torch.where(input > 0, 0.0, input)  # expm1 only sees x <= 0
    return torch.where(input > 0, input, alpha * torch.expm1(negative))


def selu(input: Tensor) -> Tensor:
    """``SELU_SCALE * elu(x, SELU_ALPHA)`` (Klambauer et al. 2017)."""
    return SELU_SCALE * elu(input, SELU_ALPHA)


def swish(input: Tensor, beta: float = 1.0) -> Tensor:
    """``x * sigmoid(beta x)`` (Ramachandran et al. 2017). beta=1 is SiLU; beta -> inf tends to
    ReLU, beta = 0 is ``x / 2``."""
    _check(input)
    return input * sigmoid(beta * input)


def silu(input: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (Hendrycks and Gimpel 2016; Elfwing et al. 2018): swish with beta = 1."""
    return swish(input, 1.0)


def hardswish(input: Tensor) -> Tensor:
    """``x * relu6(x + 3) / 6 = x * hardsigmoid(x)`` (Howard et al. 2019, MobileNetV3): swish
    with a piecewise linear gate."""
    _check(input)
    return input * hardsigmoid(input)


def mish(input: Tensor) -> Tensor:
    """``x * tanh(softplus(x))`` (Misra 2019). Unbounded above, like ReLU."""
    _check(input)
    return input * tanh(softplus(input))


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """``x * Phi(x)``, Phi the standard normal CDF (Hendrycks and Gimpel 2016);
    ``approximate="tanh"``: ``x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    _check(input)
    if approximate == "none":
        return 0.5 * input * (1 + torch.erf(input / math.sqrt(2)))
    if approximate == "tanh":
        return 0.5 * input * (1 + tanh(math.sqrt(2 / math.pi) * (input + 0.044715 * input ** 3)))
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def derivative(fn: Callable[[Tensor], Tensor], input: Tensor) -> Tensor:
    """``fn'(x)`` elementwise, by autograd, for an elementwise ``fn`` (the gradient of
    ``sum(fn(x))`` with respect to ``x_i`` is ``fn'(x_i)``). Same shape as ``input``."""
    _check(input)
    x = input.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(fn(x).sum(), x)
    return grad


# --- thin modules, torch.nn's names and arguments ---------------------------------------------

class Sigmoid(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        return sigmoid(input)


class Hardsigmoid(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        return hardsigmoid(input)


class Tanh(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        return tanh(input)


class ReLU(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        return relu(input)


class ReLU6(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        return relu6(input)


class SELU(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        return selu(input)


class SiLU(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        return silu(input)


class Hardswish(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        return hardswish(input)


class Mish(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        return mish(input)


class Softmax(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, input: Tensor) -> Tensor:
        return log_softmax(input, self.dim)


class Softplus(nn.Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input: Tensor) -> Tensor:
        return softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class LeakyReLU(nn.Module):
    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, input: Tensor) -> Tensor:
        return leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class PReLU(nn.Module):
    """One learned slope (``num_parameters=1``) or one per channel (``num_parameters=C``),
    initialised to ``init``; the parameter is called ``weight`` as in ``torch.nn.PReLU``, so
    state dicts load both ways."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25) -> None:
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, input: Tensor) -> Tensor:
        return prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(nn.Module):
    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, input: Tensor) -> Tensor:
        return elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Swish(nn.Module):
    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, input: Tensor) -> Tensor:
        return swish(input, self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class GELU(nn.Module):
    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"
