"""Normalization layers from scratch, whitening, max-norm and a plain VGG (chapter 06).

* :func:`batch_norm`, :class:`BatchNorm1d`, :class:`BatchNorm2d` (Ioffe and Szegedy 2015),
  :class:`LayerNorm` (Ba et al. 2016), :class:`GroupNorm` (Wu and He 2018),
  :class:`InstanceNorm1d`, :class:`InstanceNorm2d` (Ulyanov et al. 2016). Same arguments,
  parameter and buffer names as their ``torch.nn`` twins, so ``load_state_dict`` works both
  ways; the arithmetic is plain tensor code and autograd differentiates it.
* :func:`pca_whitening`, :func:`zca_whitening`: the full decorrelation BN approximates.
* :func:`max_norm_`: the max-norm constraint used with dropout (Srivastava et al. 2014).
* :class:`PlainVGG`: a VGG-style stack of 3x3 convolutions with or without a norm layer.

Torch's conventions, kept on purpose: the batch is normalized with the *biased* variance
(divide by ``n``), but the running variance is updated with the *unbiased* one (divide by
``n - 1``); ``momentum`` weighs the *new* statistic, ``r <- (1 - momentum) r + momentum s``;
``momentum=None`` makes BatchNorm's running statistics a cumulative average over the
``num_batches_tracked`` batches seen (InstanceNorm instead treats ``None`` as 0, as torch does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["batch_norm", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm1d",
           "InstanceNorm2d", "pca_whitening", "zca_whitening", "max_norm_", "DIGITS_VGG", "PlainVGG"]


def _check_float(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")


def _standardize(x: Tensor, dims: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) / sqrt(var + eps) over ``dims``, with the biased variance; also mean, var."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, correction=0, keepdim=True)  # biased: divide by n
    return (x - mean) * torch.rsqrt(var + eps), mean, var


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    return (1, -1) + (1,) * (x.ndim - 2)  # [1, C, 1, ...] broadcasts over batch and positions


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalization with ``torch.nn.functional.batch_norm``'s contract.

    $y = \\gamma (x - \\mu) / \\sqrt{\\sigma^2 + \\epsilon} + \\beta$ per channel, where in
    training $\\mu, \\sigma^2$ are the batch's mean and biased variance over ``N`` and every
    position, and the running buffers (if given) are updated in place:
    ``r_mean <- (1 - momentum) r_mean + momentum mu`` and
    ``r_var <- (1 - momentum) r_var + momentum sigma^2 n / (n - 1)`` (unbiased).
    In eval ``running_mean``/``running_var`` are used and left unchanged.

    Args:
        input: ``Tensor[N, C, *]`` floating (any memory format).
        running_mean, running_var: ``Tensor[C]`` or ``None`` (required when not ``training``).
        weight, bias: ``Tensor[C]`` (gamma, beta) or ``None`` for 1 and 0.
    Returns:
        ``Tensor`` of ``input``'s shape. Raises ``ValueError`` when training with one value per
        channel (``n = 1``): its variance is 0 and the unbiased estimate is undefined.
    """
    _check_float("input", input)
    if input.ndim < 2:
        raise ValueError(f"input must have shape [N, C, *], got {tuple(input.shape)}")
    dims = (0, *range(2, input.ndim))
    shape = _channel_shape(input)
    if training:
        n = input.numel() // input.shape[1]
        if n <= 1:
            raise ValueError("Expected more than 1 value per channel when training, "
                             f"got input size {tuple(input.shape)}")
        y, mean, var = _standardize(input, dims, eps)
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(momentum * mean.flatten())
                running_var.mul_(1 - momentum).add_(momentum * var.flatten() * (n / (n - 1)))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("running_mean and running_var are required when training=False")
        y = (input - running_mean.view(shape)) * torch.rsqrt(running_var.view(shape) + eps)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y


class _NormBase(nn.Module):
    """Parameters ``weight``, ``bias`` [C] and buffers ``running_mean``, ``running_var`` [C],
    ``num_batches_tracked`` (int64 scalar), named and initialized as in ``torch.nn``."""

    _ndims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        factory = {"device": device, "dtype": dtype}
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def _check_input(self, input: Tensor) -> None:
        _check_float("input", input)
        if input.ndim not in self._ndims:
            raise ValueError(f"input must have {' or '.join(map(str, self._ndims))} dims, "
                             f"got shape {tuple(input.shape)}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"input must have num_features={self.num_features} channels on dim 1, "
                             f"got shape {tuple(input.shape)}")

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            if input.numel() // input.shape[1] <= 1:  # fail before counting the batch
                batch_norm(input, None, None, training=True)
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
                 affine: bool = False, track_running_stats: bool = False, device=None, dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        shape = _channel_shape(input)
        if self.training or not self.track_running_stats:
            positions = input[0, 0].numel()
            if positions <= 1:
                raise ValueError("Expected more than 1 spatial element when training, "
                                 f"got input size {tuple(input.shape)}")
            y, mean, var = _standardize(input, tuple(range(2, input.ndim)), self.eps)  # per (n, c)
            if self.training and self.track_running_stats:
                m = 0.0 if self.momentum is None else self.momentum  # torch: None means 0 here
                with torch.no_grad():  # the batch average of per-instance statistics
                    self.running_mean.mul_(1 - m).add_(m * mean.mean(dim=0).flatten())
                    unbiased = var * (positions / (positions - 1))
                    self.running_var.mul_(1 - m).add_(m * unbiased.mean(dim=0).flatten())
        else:
            y = (input - self.running_mean.view(shape)) * torch.rsqrt(self.running_var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


class InstanceNorm1d(_InstanceNorm):
    """``torch.nn.InstanceNorm1d`` (batched input only): ``[N, C, L]``, statistics per (n, c)."""

    _ndims = (3,)


class InstanceNorm2d(_InstanceNorm):
    """``torch.nn.InstanceNorm2d`` (batched input only): ``[N, C, H, W]``, statistics per (n, c)."""

    _ndims = (4,)


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
        _check_float("input", input)
        k = len(self.normalized_shape)
        if tuple(input.shape[-k:]) != self.normalized_shape:
            raise ValueError(f"input must end in normalized_shape={self.normalized_shape}, "
                             f"got shape {tuple(input.shape)}")
        y, _, _ = _standardize(input, tuple(range(-k, 0)), self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


class GroupNorm(nn.Module):
    """``torch.nn.GroupNorm``: split the C channels of ``[N, C, *]`` into ``num_groups`` groups and
    standardize each (sample, group) over its channels and positions; per-channel affine."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(f"num_channels={num_channels} must be divisible by num_groups={num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(num_channels, **factory)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels, **factory)) if affine else None

    def forward(self, input: Tensor) -> Tensor:
        _check_float("input", input)
        if input.ndim < 2 or input.shape[1] != self.num_channels:
            raise ValueError(f"input must have shape [N, {self.num_channels}, *], got {tuple(input.shape)}")
        grouped = input.reshape(input.shape[0], self.num_groups, -1)  # [N, G, C/G * positions]
        y = _standardize(grouped, (2,), self.eps)[0].reshape(input.shape)
        if self.affine:
            shape = _channel_shape(input)
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def _eig_of_covariance(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    _check_float("x", x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must have shape [N, D] with N >= 2, got {tuple(x.shape)}")
    mean = x.mean(dim=0)  # [D]
    centred = (x - mean).double()
    cov = centred.T @ centred / x.shape[0]  # [D, D], biased (1/N)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending; columns are eigenvectors
    return mean, eigenvalues.clamp_min(0), eigenvectors


def pca_whitening(x: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """PCA whitening of rows ``x[N, D]``: returns ``(mean[D], W[D, D])`` with
    ``W = diag(lambda + eps)^{-1/2} U^T`` (eigenvectors ``U`` of the covariance, largest
    eigenvalue first), so ``z = (x - mean) @ W.T`` has covariance ``diag(lambda / (lambda + eps))``,
    the identity where ``lambda >> eps``. ``z`` is expressed in the principal axes."""
    mean, lam, u = _eig_of_covariance(x)
    lam, u = lam.flip(0), u.flip(1)  # largest variance first
    return mean, ((lam + eps).rsqrt()[:, None] * u.T).to(x.dtype)


def zca_whitening(x: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """ZCA whitening of rows ``x[N, D]``: ``W = U diag(lambda + eps)^{-1/2} U^T``, the PCA
    whitening rotated back to pixel axes. Same covariance of ``z`` as :func:`pca_whitening`;
    of all whitening matrices it changes the data least (Bell and Sejnowski 1997)."""
    mean, lam, u = _eig_of_covariance(x)
    return mean, ((u * (lam + eps).rsqrt()) @ u.T).to(x.dtype)


@torch.no_grad()
def max_norm_(weight: Tensor, max_norm: float) -> Tensor:
    """Max-norm constraint, in place: rescale every unit's incoming weight vector
    ``weight[i]`` (dim 0 is the output unit; ``[out, in]`` or ``[out, in, kh, kw]``) whose L2 norm
    exceeds ``max_norm`` onto the ball of radius ``max_norm``. Returns ``weight``."""
    _check_float("weight", weight)
    if weight.ndim < 2:
        raise ValueError(f"weight must have shape [out, in, *], got {tuple(weight.shape)}")
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    norms = weight.flatten(1).norm(dim=1)  # [out]
    scale = (max_norm / norms.clamp_min(torch.finfo(weight.dtype).tiny)).clamp(max=1.0)  # [out]
    return weight.mul_(scale.view(-1, *(1,) * (weight.ndim - 1)))


# 10 convolutions at digits size: 8x8 -> 4x4 -> 2x2 -> 1x1 ("M" is a 2x2 max pool).
DIGITS_VGG = (16, 16, "M", 32, 32, 32, "M", 64, 64, 64, 64, 64, "M")


class PlainVGG(nn.Module):
    """VGG-style network (Simonyan and Zisserman 2015): 3x3 convolutions (padding 1) and 2x2 max
    pools as listed in ``cfg``, each conv followed by ``norm_layer(channels)`` if one is given and
    a ReLU; then global average pooling and a linear layer. ``[N, in_channels, H, W]`` ->
    ``[N, num_classes]``; H and W must survive the pools (8x8 for :data:`DIGITS_VGG`, or 32x32).

    ``norm_layer`` is a class or function like ``torch.nn.BatchNorm2d`` (convs then have no bias,
    as BN's beta replaces it) or ``None`` for the plain network. Initialized as torchvision's VGG:
    Kaiming-normal (fan-out) convs, zero biases, BN weight 1 and bias 0, linear N(0, 0.01).
    """

    def __init__(self, cfg: Sequence[int | str] = DIGITS_VGG, in_channels: int = 1, num_classes: int = 10,
                 norm_layer: Callable[[int], nn.Module] | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"cfg entries must be positive ints or 'M', got {v!r}")
            layers.append(nn.Conv2d(channels, v, 3, padding=1, bias=norm_layer is None))
            if norm_layer is not None:
                layers.append(norm_layer(v))
            layers.append(nn.ReLU(inplace=True))
            channels = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)))
