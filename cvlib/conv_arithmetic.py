"""Convolution arithmetic: output sizes, receptive fields and parameter counts (chapter 03).

Every formula here is PyTorch's rule for one spatial dimension, written out:

* convolution (``nn.Conv2d``): ``out = floor((n + 2p - d(k-1) - 1) / s) + 1``;
* pooling (``nn.MaxPool2d``, ``nn.AvgPool2d``): the same, or with ``ceil`` in ``ceil_mode``, where
  a last window that would start in the right padding is dropped, and ``p <= k // 2``;
* receptive field of a stack (Dumoulin and Visin 2016; Araujo, Norris and Sim 2019):
  ``r' = r + d(k-1) j``, ``j' = j s``, ``start' = start - p j``.

:func:`layer_table` walks a real ``nn.Sequential`` and applies these per layer; the tests check
every number against the shapes of a forward pass, ``sum(p.numel() ...)`` and input gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from torch import nn

from ._checks import integer

__all__ = ["conv_output_size", "pool_output_size", "conv_params", "linear_params",
           "bn_params", "bn_buffers", "RF", "rf_step", "receptive_field",
           "LayerRow", "layer_table", "summary"]


def _pair(name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (height, width), as torch accepts for kernel_size etc."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {value!r}")
        return integer(value[0], name, minimum), integer(value[1], name, minimum)
    v = integer(value, name, minimum)
    return v, v


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int | str = 0,
                     dilation: int = 1) -> int:
    """Output length of ``nn.Conv2d`` along one spatial dimension.

    ``padding`` is an int (zeros on each side) or torch's ``"valid"`` (0) / ``"same"``
    (output = input; stride 1 only). Raises ``ValueError`` when the dilated kernel,
    ``d(k-1)+1``, is longer than the padded input (torch refuses such a convolution).
    """
    integer(size, "size", 1)
    integer(kernel_size, "kernel_size", 1)
    integer(stride, "stride", 1)
    integer(dilation, "dilation", 1)
    if padding == "same":
        if stride != 1:
            raise ValueError("padding='same' needs stride=1 (torch refuses it for strided convolutions)")
        return size
    padding = 0 if padding == "valid" else integer(padding, "padding", 0)
    span = dilation * (kernel_size - 1) + 1  # the dilated kernel's extent
    if span > size + 2 * padding:
        raise ValueError(f"kernel_size={kernel_size} (dilated extent {span}) is larger than the "
                         f"padded input {size} + 2*{padding}: the output would be empty")
    return (size + 2 * padding - span) // stride + 1


def pool_output_size(size: int, kernel_size: int, stride: int | None = None, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of ``nn.MaxPool2d`` / ``nn.AvgPool2d`` along one dimension (torch's rule).

    ``stride=None`` means ``stride = kernel_size`` (torch's default). ``ceil_mode`` rounds up
    instead of down, so a partial window at the end gets an output, except that a window
    must start inside the input or the left padding, never in the right padding.
    ``padding`` may be at most ``kernel_size // 2``. ``AvgPool2d`` has no ``dilation``.
    """
    integer(size, "size", 1)
    integer(kernel_size, "kernel_size", 1)
    stride = kernel_size if stride is None else integer(stride, "stride", 1)
    integer(padding, "padding", 0)
    integer(dilation, "dilation", 1)
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be a bool, got {type(ceil_mode).__name__}")
    if padding > kernel_size // 2:
        raise ValueError(f"padding={padding} must be at most half of kernel_size={kernel_size}")
    span = dilation * (kernel_size - 1) + 1
    room = size + 2 * padding - span  # how far the window can slide
    out = (-(-room // stride) if ceil_mode else room // stride) + 1  # -(-a // b) is ceil(a / b)
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the right padding
    if out < 1:
        raise ValueError(f"kernel_size={kernel_size} (dilated extent {span}) does not fit the "
                         f"padded input {size} + 2*{padding}: the output would be empty")
    return out


def conv_params(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                groups: int = 1, bias: bool = True) -> int:
    """Learnable parameters of ``nn.Conv2d``: ``out * (in / groups) * kh * kw`` weights
    (each filter sees only its group's ``in / groups`` channels) plus ``out`` biases.
    Depthwise convolution is ``groups = in_channels``."""
    integer(in_channels, "in_channels", 1)
    integer(out_channels, "out_channels", 1)
    kh, kw = _pair("kernel_size", kernel_size, 1)
    integer(groups, "groups", 1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"in_channels={in_channels} and out_channels={out_channels} must both "
                         f"be divisible by groups={groups}")
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Learnable parameters of ``nn.Linear``: ``in * out`` weights plus ``out`` biases."""
    integer(in_features, "in_features", 1)
    integer(out_features, "out_features", 1)
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
    return in_features * out_features + (out_features if bias else 0)


def bn_params(num_features: int, affine: bool = True) -> int:
    """Learnable parameters of ``nn.BatchNorm{1,2}d``: a scale and a shift per channel
    (``weight`` = gamma, ``bias`` = beta), none with ``affine=False``."""
    integer(num_features, "num_features", 1)
    if not isinstance(affine, bool):
        raise TypeError(f"affine must be a bool, got {type(affine).__name__}")
    return 2 * num_features if affine else 0


def bn_buffers(num_features: int, track_running_stats: bool = True) -> int:
    """Numbers BatchNorm stores but does not learn: ``running_mean`` and ``running_var`` per
    channel plus the ``num_batches_tracked`` counter. They are in ``state_dict()``, not in
    ``parameters()``."""
    integer(num_features, "num_features", 1)
    if not isinstance(track_running_stats, bool):
        raise TypeError(f"track_running_stats must be a bool, got {type(track_running_stats).__name__}")
    return 2 * num_features + 1 if track_running_stats else 0


@dataclass(frozen=True)
class RF:
    """Receptive field of one unit along one dimension, in input pixels.

    ``size``: extent of the window; ``jump``: distance between the windows of neighbouring
    units (the product of the strides); ``start``: input coordinate where unit 0's window
    begins (negative: it begins in the padding). Unit ``i`` sees ``[start + i*jump,
    start + i*jump + size - 1]``; with strides or dilation, some pixels inside may not be used.
    """

    size: int = 1
    jump: int = 1
    start: int = 0


def rf_step(rf: RF, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> RF:
    """The receptive field after one more conv or pooling layer (the ``padding`` on its left)."""
    integer(kernel_size, "kernel_size", 1)
    integer(stride, "stride", 1)
    integer(padding, "padding", 0)
    integer(dilation, "dilation", 1)
    return RF(size=rf.size + dilation * (kernel_size - 1) * rf.jump,
              jump=rf.jump * stride,
              start=rf.start - padding * rf.jump)


def receptive_field(layers: Sequence[tuple[int, ...]]) -> list[RF]:
    """Receptive field after each layer of a stack along one dimension.

    ``layers``: ``(kernel_size, stride, padding, dilation)`` per layer; trailing entries may be
    left out (defaults 1, 0, 1). Returns one :class:`RF` per layer.
    """
    rf, out = RF(), []
    for i, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or not 1 <= len(layer) <= 4:
            raise ValueError(f"layers[{i}] must be (kernel_size, stride, padding, dilation), got {layer!r}")
        rf = rf_step(rf, *layer)
        out.append(rf)
    return out


@dataclass(frozen=True)
class LayerRow:
    """One row of :func:`layer_table`: a leaf module, its output shape ``(C, H, W)`` or
    ``(F,)`` without the batch, its parameter count, and its receptive field ``(h, w)``
    (``None`` once flattened, or after an adaptive pool with uneven windows)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    rf: tuple[RF, RF] | None


_SHAPE_ONLY = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
               nn.Dropout, nn.Dropout2d, nn.Identity, nn.LocalResponseNorm, nn.Softmax, nn.LogSoftmax)


def _leaves(module: nn.Module, prefix: str = ""):
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, full + ".")
        elif len(list(child.children())):
            raise TypeError(f"{full} is a {type(child).__name__} with sub-modules: layer_table "
                            "follows nn.Sequential containers only (write the model as one)")
        else:
            yield full, child


def _spatial(name: str, shape: tuple[int, ...], kind: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"{name} ({kind}) needs a [C, H, W] input, got {list(shape)}")
    return shape


def _apply(name: str, m: nn.Module, shape: tuple[int, ...], rf):
    """(output shape, parameter count, receptive field) of leaf ``m`` applied to ``shape``."""
    kind = type(m).__name__
    if isinstance(m, nn.Conv2d):
        c, h, w = _spatial(name, shape, kind)
        if c != m.in_channels:
            raise ValueError(f"{name} expects {m.in_channels} input channels, gets {c}")
        if m.padding == "same":  # torch puts the odd pixel of 'same' padding on the right
            pad = tuple(d * (k - 1) // 2 for k, d in zip(m.kernel_size, m.dilation))
            size = [h, w]
        else:
            pad = (0, 0) if m.padding == "valid" else m.padding
            size = [conv_output_size(*args) for args in zip((h, w), m.kernel_size, m.stride, pad, m.dilation)]
        params = conv_params(m.in_channels, m.out_channels, m.kernel_size, m.groups, m.bias is not None)
        if rf is not None:
            rf = tuple(rf_step(*args) for args in zip(rf, m.kernel_size, m.stride, pad, m.dilation))
        return (m.out_channels, *size), params, rf
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        c, h, w = _spatial(name, shape, kind)
        k = _pair("kernel_size", m.kernel_size, 1)
        s = _pair("stride", m.stride or m.kernel_size, 1)  # torch stores stride=None as kernel_size
        p = _pair("padding", m.padding, 0)
        d = _pair("dilation", m.dilation, 1) if isinstance(m, nn.MaxPool2d) else (1, 1)
        size = [pool_output_size(*args, ceil_mode=m.ceil_mode) for args in zip((h, w), k, s, p, d)]
        if rf is not None:
            rf = tuple(rf_step(*args) for args in zip(rf, k, s, p, d))
        return (c, *size), 0, rf
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        c, h, w = _spatial(name, shape, kind)
        want = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * 2
        size = [n if o is None else o for n, o in zip((h, w), want)]
        if rf is not None and all(n % o == 0 for n, o in zip((h, w), size)):
            # even windows: a pool with kernel = stride = n / o
            rf = tuple(rf_step(r, n // o, n // o) for r, n, o in zip(rf, (h, w), size))
        else:  # uneven windows (or already flattened): no single receptive field
            rf = None
        return (c, *size), 0, rf
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if len(shape) not in ((3,) if isinstance(m, nn.BatchNorm2d) else (1, 2)):
            raise ValueError(f"{name} ({kind}) cannot take an input of shape {list(shape)}")
        if shape[0] != m.num_features:
            raise ValueError(f"{name} expects {m.num_features} channels, gets {shape[0]}")
        return shape, bn_params(m.num_features, m.affine), rf
    if isinstance(m, nn.Flatten):
        if (m.start_dim, m.end_dim) != (1, -1):
            raise ValueError(f"{name}: only nn.Flatten() with the default start_dim=1, end_dim=-1 "
                             "is supported")
        return (math.prod(shape),), 0, None
    if isinstance(m, nn.Linear):
        if shape[-1] != m.in_features:  # nn.Linear acts on the last dimension
            raise ValueError(f"{name} expects {m.in_features} input features, gets shape {list(shape)}")
        return (*shape[:-1], m.out_features), linear_params(m.in_features, m.out_features,
                                                            m.bias is not None), None
    if isinstance(m, _SHAPE_ONLY):
        return shape, 0, rf
    raise TypeError(f"{name}: layer_table does not know {kind}")


def layer_table(model: nn.Module, input_shape: Sequence[int]) -> list[LayerRow]:
    """Walk ``model`` (an ``nn.Sequential``, nesting allowed) layer by layer from an input of
    ``input_shape = (C, H, W)`` (no batch dimension) and compute every row analytically:
    no forward pass is run. Supported leaves: Conv2d, Max/AvgPool2d, Adaptive{Avg,Max}Pool2d,
    BatchNorm1d/2d, Linear, Flatten, activations, Dropout, LocalResponseNorm, Identity.
    Raises ``TypeError`` for another container or layer, ``ValueError`` where torch would fail.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(n, int) and n >= 1 for n in shape):
        raise ValueError(f"input_shape must be (C, H, W) of positive ints, got {input_shape!r}")
    rf, rows = (RF(), RF()), []
    for name, m in _leaves(model):
        try:
            shape, params, rf = _apply(name, m, shape, rf)
        except ValueError as exc:  # name the layer, whichever calculator refused
            message = str(exc)
            raise ValueError(message if message.startswith(name) else f"{name}: {message}") from None
        rows.append(LayerRow(name, type(m).__name__, tuple(shape), params, rf))
    return rows


def summary(model: nn.Module, input_shape: Sequence[int]) -> str:
    """:func:`layer_table` as text: one line per layer (receptive field size, jump and start
    printed once when height and width agree, as ``h×w`` otherwise) and the total."""
    rows = layer_table(model, input_shape)

    def cell(rf, field):
        if rf is None:
            return "-"
        h, w = (getattr(r, field) for r in rf)
        return str(h) if h == w else f"{h}x{w}"

    lines = [f"{'layer':<16}{'type':<18}{'output shape':<18}{'params':>12}{'RF':>8}{'jump':>6}{'start':>7}"]
    for r in rows:
        lines.append(f"{r.name:<16}{r.kind:<18}{str(list(r.shape)):<18}{r.params:>12,}"
                     f"{cell(r.rf, 'size'):>8}{cell(r.rf, 'jump'):>6}{cell(r.rf, 'start'):>7}")
    lines.append(f"{'total':<52}{sum(r.params for r in rows):>12,}")
    return "\n".join(lines)
