"""Weight constraints (chapter 06): the max-norm constraint used with dropout.

Srivastava et al. (2014, Sec. 5.1) bound the L2 norm of every unit's incoming weight vector
by a constant ``c`` and project back onto that ball after each update, which lets a network
use large learning rates without its weights blowing up.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import floating_tensor

__all__ = ["max_norm_"]


@torch.no_grad()
def max_norm_(weight: Tensor, max_norm: float) -> Tensor:
    """Max-norm constraint, in place: rescale every unit's incoming weight vector
    ``weight[i]`` (dim 0 is the output unit; ``[out, in]`` or ``[out, in, kh, kw]``) whose L2 norm
    exceeds ``max_norm`` onto the ball of radius ``max_norm``. Returns ``weight``; the same
    result as ``torch.renorm(weight, p=2, dim=0, maxnorm=max_norm)``."""
    floating_tensor(weight, "weight")
    if weight.ndim < 2:
        raise ValueError(f"weight must have shape [out, in, *], got {tuple(weight.shape)}")
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    norms = weight.flatten(1).norm(dim=1)  # [out]
    scale = (max_norm / norms.clamp_min(torch.finfo(weight.dtype).tiny)).clamp(max=1.0)  # [out]
    return weight.mul_(scale.view(-1, *(1,) * (weight.ndim - 1)))
