"""Normalization layers from scratch (chapter 06): batch, instance, layer and group norm.

* :func:`batch_norm`, :class:`BatchNorm1d`, :class:`BatchNorm2d` (Ioffe and Szegedy 2015). In
  training they run :class:`BatchNormFunction`, a ``torch.autograd.Function`` whose ``backward``
  is the paper's formula for ``dx``, ``dgamma``, ``dbeta`` written out by hand.
* :class:`LayerNorm` (Ba et al. 2016), :class:`GroupNorm` (Wu and He 2018),
  :class:`InstanceNorm1d`, :class:`InstanceNorm2d` (Ulyanov et al. 2016): plain tensor code,
  differentiated by autograd.

Same arguments (torch 2.14's, ``bias=`` included), parameter and buffer names as the ``torch.nn``
twins, so ``load_state_dict`` works both ways. Torch's conventions, kept on purpose: the batch is
normalized with the *biased* variance (divide by ``n``), the running variance is updated with the
*unbiased* one (divide by ``n - 1``); ``momentum`` weighs the *new* statistic,
``r <- (1 - momentum) r + momentum s``; ``momentum=None`` makes BatchNorm's running statistics a
cumulative average over the ``num_batches_tracked`` batches (InstanceNorm treats ``None`` as 0).
An empty batch gives an empty output and leaves the running statistics alone. float16 and
bfloat16 inputs are normalized in float32 and rounded once, as torch's CPU kernels do; a float32
module accepts them and answers in the input's dtype. The output keeps the input's memory format
where torch's does (BatchNorm, GroupNorm); InstanceNorm and LayerNorm answer contiguous, as torch.

Deliberate differences (each raises; ``tests/test_normalization.py::test_refused_by_design``):
``num_features`` / ``num_channels`` of 0 and ``momentum`` outside [0, 1], which torch accepts;
an InstanceNorm input whose channel count is not ``num_features`` with ``affine=False`` (torch
warns and normalizes anyway). No lazy, 3d or sync variants. One difference in cvlib's favour: on
an empty batch torch's InstanceNorm raises (``affine=True``) or writes NaN into its running
statistics; cvlib returns the empty output and keeps them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._checks import floating_tensor, integer

__all__ = ["batch_norm", "BatchNormFunction", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm",
           "InstanceNorm1d", "InstanceNorm2d"]


def _compute_dtype(x: Tensor) -> torch.dtype:
    # torch's CPU kernels accumulate float16/bfloat16 in float32 and round once, at the end
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _standardize(x: Tensor, dims: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) / sqrt(var + eps) over ``dims``, with the biased variance; also mean, var."""
    mean = x.mean(dim=dims, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(dim=dims, keepdim=True)  # biased (divide by n), two passes as torch
    return centred * torch.rsqrt(var + eps), mean, var


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    return (1, -1) + (1,) * (x.ndim - 2)  # [1, C, 1, ...] broadcasts over batch and positions


def _update_(running: Tensor, statistic: Tensor, momentum: float) -> None:
    """``running <- (1 - momentum) running + momentum statistic``, in place and rounded once."""
    running.copy_(torch.lerp(running.to(statistic.dtype), statistic, momentum))


class BatchNormFunction(torch.autograd.Function):
    """Training-mode batch norm, ``y = gamma * x_hat + beta`` with
    ``x_hat = (x - mu) / sqrt(sigma^2 + eps)``, and the backward written out by hand.

    ``apply(x, weight, bias, eps)``: ``x`` is ``Tensor[N, C, *]``, ``weight``/``bias`` are
    ``Tensor[C]`` (float32 or the dtype of ``x``). Returns ``(y, mean, var)``: ``y`` of ``x``'s
    shape, dtype and memory format; ``mean``, ``var`` ``Tensor[C]``, the batch's mean and biased
    variance (float32 for a float16/bfloat16 ``x``), for the running buffers, not differentiable.

    With ``n = N * positions`` values per channel and sums over them (Ioffe and Szegedy 2015, Sec. 3):
    ``dbeta = sum(dy)``, ``dgamma = sum(dy * x_hat)`` and
    ``dx = gamma / sqrt(sigma^2 + eps) * (dy - dbeta / n - x_hat * dgamma / n)``: the gradient
    through ``mu`` and ``sigma^2`` removes from ``dy`` its mean and its component along ``x_hat``.
    Autograd through the forward's elementary ops finds the same (``tests/test_normalization.py``)
    in many more kernels; torch's twin is a compiled version of these lines.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float):
        dims = (0, *range(2, x.ndim))  # every dim but the channels
        shape = _channel_shape(x)
        xc = x.to(_compute_dtype(x))
        n = xc.numel() // xc.shape[1]  # values per channel
        mean = xc.mean(dim=dims, keepdim=True)  # [1, C, 1, ...]
        centred = xc - mean  # x - mu; x_hat = centred * inv_std is never stored
        # biased variance |x - mu|^2 / n, in a second pass as torch's kernel (the norm needs no temporary)
        var = torch.linalg.vector_norm(centred, dim=dims, keepdim=True).square() / max(n, 1)  # 0 if empty
        inv_std = torch.rsqrt(var + eps)  # [1, C, 1, ...]
        scale = weight.to(xc.dtype).view(shape) * inv_std  # gamma / sqrt(var + eps)
        y = torch.addcmul(bias.to(xc.dtype).view(shape), centred, scale)  # gamma * x_hat + beta
        ctx.save_for_backward(centred, inv_std, weight)
        ctx.input_dtype = x.dtype
        mean, var = mean.flatten(), var.flatten()
        ctx.mark_non_differentiable(mean, var)
        return y.to(x.dtype), mean, var

    @staticmethod
    def backward(ctx, dy: Tensor, _dmean, _dvar):
        centred, inv_std, weight = ctx.saved_tensors
        dims = (0, *range(2, centred.ndim))
        shape = _channel_shape(centred)
        n = centred.numel() // centred.shape[1]
        dy = dy.to(centred.dtype)
        dbeta = dy.sum(dim=dims)  # [C]
        dx = dy * centred  # scratch for dy * (x - mu), overwritten by dx below
        dgamma = dx.sum(dim=dims) * inv_std.flatten()  # sum(dy * x_hat), [C]
        # dx = k * (dy - dbeta / n - x_hat * dgamma / n) with k = gamma * inv_std and
        # x_hat = centred * inv_std: k * dy + centred * (-k inv_std dgamma / n) + (-k dbeta / n),
        # per-channel coefficients, in two passes
        k = weight.to(centred.dtype).view(shape) * inv_std
        torch.addcmul(-k * dbeta.view(shape) / n, centred, -k * inv_std * dgamma.view(shape) / n, out=dx)
        dx.addcmul_(dy, k)
        return dx.to(ctx.input_dtype), dgamma.to(weight.dtype), dbeta.to(weight.dtype), None


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalization with ``torch.nn.functional.batch_norm``'s contract.

    $y = \\gamma (x - \\mu) / \\sqrt{\\sigma^2 + \\epsilon} + \\beta$ per channel, where in
    training $\\mu, \\sigma^2$ are the batch's mean and biased variance over ``N`` and every
    position (:class:`BatchNormFunction`), and the running buffers (if given) are updated in place:
    ``r_mean <- (1 - momentum) r_mean + momentum mu`` and
    ``r_var <- (1 - momentum) r_var + momentum sigma^2 n / (n - 1)`` (unbiased).
    In eval ``running_mean``/``running_var`` are used and left unchanged.

    Args:
        input: ``Tensor[N, C, *]`` floating (any memory format; N may be 0).
        running_mean, running_var: ``Tensor[C]`` or ``None`` (required when not ``training``).
        weight, bias: ``Tensor[C]`` (gamma, beta) or ``None`` for 1 and 0.
        eps: ``> 0`` in training, ``>= 0`` in eval (torch's rule).
    Returns:
        ``Tensor`` of ``input``'s shape and dtype. Raises ``ValueError`` when training with one
        value per channel (``n = 1``): its variance is 0 and the unbiased estimate is undefined.
    """
    floating_tensor(input, "input")
    if input.ndim < 2:
        raise ValueError(f"input must have shape [N, C, *], got {tuple(input.shape)}")
    if training and not eps > 0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if not eps >= 0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    shape = _channel_shape(input)
    if training:
        n = input.numel() // input.shape[1] if input.shape[1] else 0
        if n == 1:
            raise ValueError("Expected more than 1 value per channel when training, "
                             f"got input size {tuple(input.shape)}")
        factory = {"dtype": _compute_dtype(input), "device": input.device}
        ones = weight if weight is not None else torch.ones(input.shape[1], **factory)
        zeros = bias if bias is not None else torch.zeros(input.shape[1], **factory)
        y, mean, var = BatchNormFunction.apply(input, ones, zeros, eps)
        if running_mean is not None and running_var is not None and n > 0:  # empty: nothing to average
            with torch.no_grad():
                _update_(running_mean, mean, momentum)
                _update_(running_var, var * (n / (n - 1)), momentum)  # unbiased
        return y
    if running_mean is None or running_var is None:
        raise ValueError("running_mean and running_var are required when training=False")
    dtype = _compute_dtype(input)
    x = input.to(dtype)
    y = (x - running_mean.to(dtype).view(shape)) * torch.rsqrt(running_var.to(dtype).view(shape) + eps)
    if weight is not None:
        y = y * weight.to(dtype).view(shape)
    if bias is not None:
        y = y + bias.to(dtype).view(shape)
    return y.to(input.dtype)


class _NormBase(nn.Module):
    """Parameters ``weight``, ``bias`` [C] and buffers ``running_mean``, ``running_var`` [C],
    ``num_batches_tracked`` (int64 scalar), named and initialized as in ``torch.nn``."""

    _ndims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None,
                 *, bias: bool = True) -> None:
        super().__init__()
        integer(num_features, "num_features", 1)
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(num_features, **factory)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features, **factory)) if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def _check_input(self, input: Tensor, channel_dim: int = 1) -> None:
        if input.ndim not in self._ndims:
            raise ValueError(f"input must have {' or '.join(map(str, self._ndims))} dims, "
                             f"got shape {tuple(input.shape)}")
        if input.shape[channel_dim] != self.num_features:
            raise ValueError(f"input must have num_features={self.num_features} channels on dim "
                             f"{channel_dim}, got shape {tuple(input.shape)}")

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    def forward(self, input: Tensor) -> Tensor:
        floating_tensor(input, "input")
        self._check_input(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            if input.numel() == input.shape[1]:  # one value per channel: fail before counting it
                batch_norm(input, None, None, training=True, eps=self.eps)
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative average: the k-th batch gets weight 1/k
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        update = not self.training or self.track_running_stats
        return batch_norm(input, self.running_mean if update else None, self.running_var if update else None,
                          self.weight, self.bias, use_batch_stats, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """``torch.nn.BatchNorm1d``: input ``[N, C]`` or ``[N, C, L]``, statistics per channel."""

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """``torch.nn.BatchNorm2d``: input ``[N, C, H, W]``, statistics per channel over N, H, W."""

    _ndims = (4,)


class _InstanceNorm(_NormBase):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device=None, dtype=None,
                 *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input: Tensor) -> Tensor:
        floating_tensor(input, "input")
        batched = input.ndim == max(self._ndims)
        self._check_input(input, channel_dim=1 if batched else 0)
        if not batched:  # [C, *]: a batch of one, as torch does
            return self.forward(input.unsqueeze(0)).squeeze(0)
        dtype = _compute_dtype(input)
        x = input.contiguous().to(dtype)  # torch's kernel also answers contiguous
        shape = _channel_shape(x)
        if self.training or not self.track_running_stats:
            positions = math.prod(x.shape[2:])
            if positions == 1:
                raise ValueError("Expected more than 1 spatial element when training, "
                                 f"got input size {tuple(input.shape)}")
            y, mean, var = _standardize(x, tuple(range(2, x.ndim)), self.eps)  # per (n, c)
            if self.training and self.track_running_stats and x.numel() > 0:
                m = 0.0 if self.momentum is None else self.momentum  # torch: None means 0 here
                with torch.no_grad():  # the batch average of per-instance statistics
                    unbiased = var * (positions / (positions - 1))
                    _update_(self.running_mean, mean.mean(dim=0).flatten(), m)
                    _update_(self.running_var, unbiased.mean(dim=0).flatten(), m)
        else:
            mean, var = self.running_mean.to(dtype).view(shape), self.running_var.to(dtype).view(shape)
            y = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.to(dtype).view(shape)
        if self.bias is not None:
            y = y + self.bias.to(dtype).view(shape)
        return y.to(input.dtype)


class InstanceNorm1d(_InstanceNorm):
    """``torch.nn.InstanceNorm1d``: ``[N, C, L]`` (or unbatched ``[C, L]``), statistics per (n, c)."""

    _ndims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    """``torch.nn.InstanceNorm2d``: ``[N, C, H, W]`` (or unbatched ``[C, H, W]``), statistics per (n, c)."""

    _ndims = (3, 4)


class LayerNorm(nn.Module):
    """``torch.nn.LayerNorm``: standardize each sample over its last ``len(normalized_shape)``
    dims, then an elementwise affine map with ``weight``, ``bias`` of shape ``normalized_shape``."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"normalized_shape must be a positive int or ints, got {normalized_shape!r}")
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(shape, **factory)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(shape, **factory)) if elementwise_affine and bias else None

    def forward(self, input: Tensor) -> Tensor:
        floating_tensor(input, "input")
        k = len(self.normalized_shape)
        if tuple(input.shape[-k:]) != self.normalized_shape:
            raise ValueError(f"input must end in normalized_shape={self.normalized_shape}, "
                             f"got shape {tuple(input.shape)}")
        dtype = _compute_dtype(input)
        x = input.contiguous().to(dtype)  # torch's kernel answers contiguous
        y, _, _ = _standardize(x, tuple(range(-k, 0)), self.eps)
        if self.weight is not None:
            y = y * self.weight.to(dtype)
        if self.bias is not None:
            y = y + self.bias.to(dtype)
        return y.to(input.dtype)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(nn.Module):
    """``torch.nn.GroupNorm``: split the C channels of ``[N, C, *]`` into ``num_groups`` groups and
    standardize each (sample, group) over its channels and positions; per-channel affine."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        integer(num_groups, "num_groups", 1)
        integer(num_channels, "num_channels", 1)
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(num_channels, **factory)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels, **factory)) if affine and bias else None

    def forward(self, input: Tensor) -> Tensor:
        floating_tensor(input, "input")
        if input.ndim < 2 or input.shape[1] != self.num_channels:
            raise ValueError(f"input must have shape [N, {self.num_channels}, *], got {tuple(input.shape)}")
        dtype = _compute_dtype(input)
        x = input.to(dtype)
        n, g = x.shape[0], self.num_groups
        grouped = x.reshape(n, g, math.prod(x.shape[1:]) // g)  # [N, G, C/G * positions] (N may be 0)
        mean = grouped.mean(dim=2)  # [N, G]
        var = (grouped - mean[..., None]).square().mean(dim=2)  # [N, G], biased
        inv_std = torch.rsqrt(var + self.eps)
        per_channel = (n, self.num_channels) + (1,) * (x.ndim - 2)  # [N, C, 1, ...]
        mean = mean.repeat_interleave(self.num_channels // g, dim=1).view(per_channel)
        inv_std = inv_std.repeat_interleave(self.num_channels // g, dim=1).view(per_channel)
        y = (x - mean) * inv_std  # elementwise on x itself: keeps its memory format, as torch
        shape = _channel_shape(x)
        if self.weight is not None:
            y = y * self.weight.to(dtype).view(shape)
        if self.bias is not None:
            y = y + self.bias.to(dtype).view(shape)
        return y.to(input.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
