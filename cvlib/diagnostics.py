"""What a model has learned, measured (chapter 05): confidence, fit, receptive field, symmetry.

* :func:`max_softmax`: how confident the predictions are (histogram it over training).
* :func:`diagnose_fit`: under- or over-fitting, read from the train/validation errors by stated rules.
* :func:`input_gradient_map`: which input pixels can move one output unit (its receptive field).
* :func:`count_distinct_units`: how many hidden units are really different (the symmetry that a
  constant initialisation never breaks).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import floating_tensor, tensor
from .topk import full_precision

__all__ = ["max_softmax", "diagnose_fit", "input_gradient_map", "count_distinct_units"]


def _check_module(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


@torch.no_grad()
def max_softmax(model: nn.Module, loader: Iterable, device: torch.device | str) -> Tensor:
    """Confidence of every prediction: ``max_c softmax(logits)_c`` in eval mode, ``Tensor[N]``
    on the CPU, values in ``[1/C, 1]``, in the logits' dtype (float32 for bf16/fp16 logits).
    The model's train/eval flag is restored."""
    _check_module(model)
    was_training = model.training
    model.eval()
    out = []
    try:
        for x, _ in loader:
            logits = full_precision(model(x.to(device)))  # bf16/fp16 (autocast) in float32
            out.append(F.softmax(logits, dim=1).amax(dim=1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def diagnose_fit(train_err: float, val_err: float, *, target_err: float = 0.05,
                 max_gap: float = 0.05) -> str:
    """Verdict from the final training and validation error (fractions in [0, 1]).

    Rules, checked in this order:

    * ``"underfitting"``: training error above ``target_err``: the model cannot even fit the
      data it sees (too small, too few steps, too low a learning rate, too much regularisation).
    * ``"overfitting"``: validation error exceeds training error by more than ``max_gap``: the
      model fits the training set but does not generalise (more data, augmentation,
      regularisation, early stopping).
    * ``"good fit"``: otherwise.
    """
    for name, v in (("train_err", train_err), ("val_err", val_err), ("target_err", target_err),
                    ("max_gap", max_gap)):
        if not 0 <= v <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {v!r}")
    if train_err > target_err:
        return "underfitting"
    if val_err - train_err > max_gap:
        return "overfitting"
    return "good fit"


# --- receptive field, symmetry -------------------------------------------------------------

def input_gradient_map(model: nn.Module, inputs: Tensor, *, position: tuple[int, int] | None = None) -> Tensor:
    """Mean absolute gradient of one output unit with respect to every input pixel.

    ``model`` maps ``inputs[N, C, H, W]`` to a feature map ``[N, K, H', W']``; the unit is the
    sum over the K channels at ``position`` (default: the centre, ``(H' // 2, W' // 2)``) in
    each image. Returns ``Tensor[H, W]`` (mean over N images and C channels of ``|d unit / d x|``).
    Its non-zero pixels are the unit's measured receptive field. Use several random images: a
    max-pool or a ReLU passes gradient through only some paths for any one image. Run in eval
    mode: in training mode BatchNorm's batch statistics connect every pixel of every image to
    every output. The model's train/eval flag is not changed here; that choice is yours.
    """
    _check_module(model)
    if floating_tensor(inputs, "inputs").ndim != 4:
        raise ValueError(f"inputs must be a Tensor[N, C, H, W], got {getattr(inputs, 'shape', type(inputs))}")
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x)
    if out.ndim != 4:
        raise ValueError(f"model must return a feature map [N, K, H', W'], got {tuple(out.shape)}")
    i, j = position if position is not None else (out.shape[2] // 2, out.shape[3] // 2)
    if not (0 <= i < out.shape[2] and 0 <= j < out.shape[3]):
        raise ValueError(f"position {(i, j)} is outside the {tuple(out.shape[2:])} output map")
    out[:, :, i, j].sum().backward()  # images are independent, so one backward serves all N
    return x.grad.abs().mean(dim=(0, 1))  # [H, W]


def count_distinct_units(weight: Tensor, *, atol: float = 1e-6) -> int:
    """Number of distinct rows of ``weight[units, fan_in]`` (rows within ``atol`` of an earlier
    row, in max-abs difference, count as copies). Hidden units with identical incoming weights
    compute the same function, so a layer whose rows are all equal has one unit, however wide."""
    if tensor(weight, "weight").ndim < 2:
        raise ValueError(f"weight must be a Tensor with >= 2 dims [units, ...], got shape {tuple(weight.shape)}")
    rows = weight.detach().flatten(1)
    diff = (rows[:, None, :] - rows[None, :, :]).abs().amax(dim=2)  # [U, U]
    earlier_copy = torch.tril(diff <= atol, diagonal=-1).any(dim=1)  # [U]
    return int((~earlier_copy).sum())
