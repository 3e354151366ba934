"""The argument guards cvlib's modules share: one wording, and one exception type per mistake.

As in torch: a value of the wrong *type* (not a tensor, or a tensor whose dtype is of the wrong
kind) raises ``TypeError``; a tensor of the right type with the wrong shape or values raises
``ValueError``. Every message names the argument.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["floating_tensor", "index_tensor", "integer", "tensor"]


def tensor(x, name: str) -> Tensor:
    """``x`` if it is a ``torch.Tensor``; otherwise ``TypeError`` naming ``name``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def floating_tensor(x, name: str) -> Tensor:
    """``x`` if it is a tensor of a floating dtype (float16, bfloat16, float32, float64)."""
    tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    return x


def index_tensor(x, name: str) -> Tensor:
    """``x`` if it is a tensor of integer class or box indices (not bool, floating or complex)."""
    tensor(x, name)
    if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
        raise TypeError(f"{name} must hold integer indices, got dtype {x.dtype}")
    return x


def integer(value, name: str, low: int | None = None) -> int:
    """``value`` if it is an int (not a bool) and, with ``low``, at least ``low``: ``TypeError``
    for another type, ``ValueError`` below ``low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return value
