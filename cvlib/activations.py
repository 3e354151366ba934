"""Activation functions built from elementary tensor operations (chapter 07).

Each activation is a function with ``torch.nn.functional``'s name and arguments, plus a thin
``nn.Module`` with ``torch.nn``'s name that calls it (timm's pattern). Only ``exp``, ``expm1``,
``log``, ``log1p``, ``erf``, ``where``, ``amax``, ``sum`` and arithmetic are used, so autograd
derives every gradient from the formula written here; the tests compare values and gradients
with torch in float32 and float64, including the kinks and inputs of +-1e4, and run torch's own
module test database (``module_db``) through the modules, float16 and bfloat16 included.

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
* **Reduced precision.** float16 and bfloat16 inputs are computed in float32 and rounded once,
  to the input's dtype, as torch's CPU kernels do (float16 ``exp(12)`` would overflow).
* **Memory format.** The output has the input's memory format (channels_last stays
  channels_last), except softmax and log-softmax, which answer contiguous, as torch's do.

:func:`softmax` is the exception to "autograd derives every gradient": it is a
``torch.autograd.Function`` with the backward ``y * (g - sum(g * y))`` written by hand (the
Jacobian ``diag(y) - y y^T`` applied to ``g``), which saves the graph of five elementary ops.

Deliberate differences from torch (each raises; ``tests/test_activations.py::test_refused_by_design``):
``inplace=True`` (cvlib computes out of place: ``ValueError``); ``Softmax(dim=None)`` and
``LogSoftmax(dim=None)``, torch's deprecated implicit choice of dim (``TypeError``: pass ``dim``);
``softplus`` with ``beta <= 0`` (``ValueError``); softmax, log-softmax and log-sum-exp over a
dim of length 0 (``ValueError``: the maximum of nothing is undefined; torch returns an empty tensor).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ._checks import floating_tensor, tensor

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


def _opmath(input: Tensor) -> Tensor:
    """``input`` as the dtype to compute in: float32 for float16/bfloat16 (cast back at the end)."""
    floating_tensor(input, "input")
    return input.float() if input.dtype in (torch.float16, torch.bfloat16) else input


def _check_dim(input: Tensor, dim: int) -> None:
    floating_tensor(input, "input")
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    ndim = max(input.ndim, 1)
    if not -ndim <= dim < ndim:
        raise ValueError(f"dim must be in [{-ndim}, {ndim - 1}] for input of shape "
                         f"{tuple(input.shape)}, got {dim}")
    if input.ndim and input.shape[dim] == 0:
        raise ValueError(f"input has no entries along dim {dim} (shape {tuple(input.shape)}): "
                         "the maximum of an empty slice is undefined")


def _out_of_place(inplace: bool) -> None:
    if inplace:
        raise ValueError("inplace=True is not supported: cvlib's activations compute out of place "
                         "(the formula, then autograd); use inplace=False")


def _abs(x: Tensor) -> Tensor:
    # |x| with gradient +1 at 0 (torch.abs has gradient 0 there, which would zero tanh'(0)).
    return torch.where(x >= 0, x, -x)


def sigmoid(input: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``, values in [0, 1]. Same shape and dtype as ``input``."""
    x = _opmath(input)
    z = torch.exp(-_abs(x))  # exp(-|x|) in (0, 1]: no overflow for any x
    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z)).to(input.dtype)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """torch's hard sigmoid ``relu6(x + 3) / 6``: 0 below -3, 1 above 3, slope 1/6 between.
    (Keras before version 3 used ``clip(0.2 x + 0.5, 0, 1)``, slope 1/5: a different function.)"""
    x = _opmath(input)
    _out_of_place(inplace)
    # Compare x itself with +-3, not x + 3 with 0 and 6: x + 3 rounds (2.9999998 + 3 == 6 in
    # float32), which would move the kink and change the gradient next to it.
    return torch.where(x <= -3, 0.0, torch.where(x >= 3, 1.0, (x + 3) / 6)).to(input.dtype)


def logsumexp(input: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x), dim))`` without overflow: ``m + log(sum(exp(x - m)))``, ``m = max(x)``.
    A slice of all -inf gives -inf and a slice holding +inf gives +inf, as in torch."""
    _check_dim(input, dim)
    x = _opmath(input)
    m = x.detach().amax(dim=dim, keepdim=True)  # reduced dim kept as size 1
    m = torch.where(m.isinf(), 0.0, m)  # inf - inf would be NaN; exp handles +-inf itself
    out = torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True)) + m
    return (out if keepdim else out.squeeze(dim)).to(input.dtype)


class _Softmax(torch.autograd.Function):
    """``y = exp(x - max) / sum(exp(x - max))`` along ``dim``; backward ``y * (g - sum(g * y))``."""

    @staticmethod
    def forward(ctx, input: Tensor, dim: int) -> Tensor:
        x = _opmath(input).contiguous()  # torch's kernel answers contiguous in any memory format
        y = x - x.amax(dim=dim, keepdim=True)  # a new tensor; its maximum is 0
        y.exp_()  # in place: values in [0, 1], no overflow
        y /= y.sum(dim=dim, keepdim=True)
        ctx.save_for_backward(y)  # float32 for a float16/bfloat16 input: no second rounding
        ctx.dim, ctx.input_dtype = dim, input.dtype
        return y.to(input.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (y,) = ctx.saved_tensors
        g = grad.to(y.dtype)
        # Jacobian-vector product: dy_i/dx_j = y_i (delta_ij - y_j), so dx = y * (g - <g, y>)
        return (y * (g - (g * y).sum(dim=ctx.dim, keepdim=True))).to(ctx.input_dtype), None


def softmax(input: Tensor, dim: int, dtype: torch.dtype | None = None) -> Tensor:
    """``exp(x) / sum(exp(x), dim)``, computed as ``exp(x - max) / sum(exp(x - max))``.

    -inf entries get probability 0. As in torch, a slice with no finite maximum (all -inf, or
    a +inf entry) gives NaN: there is no distribution to return. Same shape as ``input``,
    contiguous; ``dtype`` (as torch's) casts ``input`` first. Four passes over the data (max,
    subtract, exp in place, sum and divide in place) and a hand-written backward (:class:`_Softmax`)."""
    _check_dim(input, dim)
    if dtype is not None:
        input = input.to(dtype)
    return _Softmax.apply(input, dim)


def log_softmax(input: Tensor, dim: int, dtype: torch.dtype | None = None) -> Tensor:
    """``x - logsumexp(x)``: exact where ``log(softmax(x))`` underflows to -inf. -inf stays -inf.
    Contiguous, as torch's; ``dtype`` (as torch's) casts ``input`` first."""
    _check_dim(input, dim)
    if dtype is not None:
        input = input.to(dtype)
    x = _opmath(input).contiguous()
    shifted = x - x.detach().amax(dim=dim, keepdim=True)  # max entry is 0
    return (shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))).to(input.dtype)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, and exactly ``x`` where ``beta x > threshold`` (torch's
    switch to the linear asymptote; the gap there is ``log1p(exp(-20)) = 2.1e-9``)."""
    x = _opmath(input)
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    scaled = beta * x
    linear = scaled > threshold
    safe = torch.where(linear, 0.0, scaled)  # exp never sees the large inputs, even in backward
    return torch.where(linear, x, torch.log1p(torch.exp(safe)) / beta).to(input.dtype)


def tanh(input: Tensor) -> Tensor:
    """``(e^x - e^-x) / (e^x + e^-x)``, as ``sign(x) * (1 - e^{-2|x|}) / (1 + e^{-2|x|})``."""
    x = _opmath(input)
    e = torch.expm1(-2 * _abs(x))  # e^{-2|x|} - 1 in (-1, 0]; expm1 keeps tanh(1e-10) exact
    t = -e / (2 + e)  # tanh(|x|)
    return torch.where(x >= 0, t, -t).to(input.dtype)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(x, 0)``; gradient 0 at 0 (torch's choice of subgradient)."""
    floating_tensor(input, "input")
    _out_of_place(inplace)
    return torch.where(input <= 0, 0.0, input)  # NaN fails the test and passes through; exact in any dtype


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(x, 0), 6)``; gradient 0 at both kinks, 0 and 6."""
    floating_tensor(input, "input")
    _out_of_place(inplace)
    return torch.where(input <= 0, 0.0, torch.where(input >= 6, 6.0, input))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise (Maas et al. 2013)."""
    x = _opmath(input)
    _out_of_place(inplace)
    return torch.where(x > 0, x, negative_slope * x).to(input.dtype)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """Leaky ReLU with a learned slope (He et al. 2015): ``weight`` is ``Tensor[1]`` (one slope)
    or ``Tensor[C]`` (one per channel, channels on dim 1 of ``input[N, C, *]``). Output of
    ``input``'s shape (a 0-d input gives a 0-d output)."""
    x = _opmath(input)
    tensor(weight, "weight")
    if weight.ndim != 1:
        raise ValueError(f"weight must be a 1-d tensor [1] or [C], got {getattr(weight, 'shape', weight)!r}")
    if weight.numel() == 1:
        slope = weight.reshape(())  # 0-d: broadcasts to any input without adding a dim
    else:
        if x.ndim < 2 or x.shape[1] != weight.numel():
            raise ValueError(f"weight has {weight.numel()} slopes but input {tuple(input.shape)} "
                             f"does not have that many channels on dim 1")
        slope = weight.reshape(-1, *[1] * (x.ndim - 2))  # [C, 1, ...]: broadcasts over N, H, W
    return torch.where(x > 0, x, slope.to(x.dtype) * x).to(input.dtype)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` for ``x > 0``, ``alpha (e^x - 1)`` otherwise (Clevert et al. 2015)."""
    x = _opmath(input)
    _out_of_place(inplace)
    negative = torch.where(x > 0, 0.0, x)  # expm1 only sees x <= 0
    return torch.where(x > 0, x, alpha * torch.expm1(negative)).to(input.dtype)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """``SELU_SCALE * elu(x, SELU_ALPHA)`` (Klambauer et al. 2017)."""
    x = _opmath(input)
    _out_of_place(inplace)
    return (SELU_SCALE * elu(x, SELU_ALPHA)).to(input.dtype)


def swish(input: Tensor, beta: float = 1.0) -> Tensor:
    """``x * sigmoid(beta x)`` (Ramachandran et al. 2017). beta=1 is SiLU; beta -> inf tends to
    ReLU, beta = 0 is ``x / 2``."""
    x = _opmath(input)
    return (x * sigmoid(beta * x)).to(input.dtype)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (Hendrycks and Gimpel 2016; Elfwing et al. 2018): swish with beta = 1."""
    _out_of_place(inplace)
    return swish(input, 1.0)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * relu6(x + 3) / 6 = x * hardsigmoid(x)`` (Howard et al. 2019, MobileNetV3): swish
    with a piecewise linear gate."""
    x = _opmath(input)
    _out_of_place(inplace)
    return (x * hardsigmoid(x)).to(input.dtype)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * tanh(softplus(x))`` (Misra 2019). Unbounded above, like ReLU."""
    x = _opmath(input)
    _out_of_place(inplace)
    return (x * tanh(softplus(x))).to(input.dtype)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """``x * Phi(x)``, Phi the standard normal CDF (Hendrycks and Gimpel 2016);
    ``approximate="tanh"``: ``x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    x = _opmath(input)
    if approximate == "none":
        return (0.5 * x * (1 + torch.erf(x / math.sqrt(2)))).to(input.dtype)
    if approximate == "tanh":
        return (0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))).to(input.dtype)
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def derivative(fn: Callable[[Tensor], Tensor], input: Tensor) -> Tensor:
    """``fn'(x)`` elementwise, by autograd, for an elementwise ``fn`` (the gradient of
    ``sum(fn(x))`` with respect to ``x_i`` is ``fn'(x_i)``). Same shape as ``input``."""
    floating_tensor(input, "input")
    x = input.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(fn(x).sum(), x)
    return grad


# --- thin modules, torch.nn's names and arguments ---------------------------------------------

class _Elementwise(nn.Module):
    """An activation with torch's ``inplace`` argument (only ``False`` is supported)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        _out_of_place(inplace)
        self.inplace = inplace


class Sigmoid(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        return sigmoid(input)


class Tanh(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        return tanh(input)


class Hardsigmoid(_Elementwise):
    def forward(self, input: Tensor) -> Tensor:
        return hardsigmoid(input)


class ReLU(_Elementwise):
    def forward(self, input: Tensor) -> Tensor:
        return relu(input)


class ReLU6(_Elementwise):
    def forward(self, input: Tensor) -> Tensor:
        return relu6(input)


class SELU(_Elementwise):
    def forward(self, input: Tensor) -> Tensor:
        return selu(input)


class SiLU(_Elementwise):
    def forward(self, input: Tensor) -> Tensor:
        return silu(input)


class Hardswish(_Elementwise):
    def forward(self, input: Tensor) -> Tensor:
        return hardswish(input)


class Mish(_Elementwise):
    def forward(self, input: Tensor) -> Tensor:
        return mish(input)


class Softmax(nn.Module):
    """``dim`` is required (torch's ``dim=None`` guesses one; cvlib refuses to guess)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int, got {dim!r}")
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


class LeakyReLU(_Elementwise):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.negative_slope = negative_slope

    def forward(self, input: Tensor) -> Tensor:
        return leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class PReLU(nn.Module):
    """One learned slope (``num_parameters=1``) or one per channel (``num_parameters=C``),
    initialised to ``init``; the parameter is called ``weight`` as in ``torch.nn.PReLU``, so
    state dicts load both ways."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None) -> None:
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init), device=device, dtype=dtype))

    def forward(self, input: Tensor) -> Tensor:
        return prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(_Elementwise):
    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(inplace)
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
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"
