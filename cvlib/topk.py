"""Top-k accuracy and error (chapter 01).

A prediction is a row of scores (logits or probabilities, any monotone transform gives the
same answer); the label is an integer class index. "Top-k correct" means the true class is
among the k highest-scoring classes.

Ties. ``torch.topk`` breaks ties in an unspecified, implementation-defined order, so a metric
built on it can give different answers for the same scores on different devices. Here the
rule is stated and device-independent: **a tie is not a win**. The true class counts as being
in the top k only if fewer than k *other* classes score *at least as high* as it does. With
no ties this is exactly "the label is in ``torch.topk(scores, k).indices``"; with ties it is
the pessimistic end, so a model that outputs constant scores gets no credit (its top-1
error is 1, not 1/C or whatever index order happens to favour).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import floating_tensor, index_tensor

__all__ = ["topk_correct", "rivals", "topk_accuracy", "topk_error", "full_precision"]


def _check_inputs(logits: Tensor, target: Tensor, k: int) -> None:
    floating_tensor(logits, "logits")
    index_tensor(target, "target")
    if logits.ndim != 2:
        raise ValueError(
            f"logits must have shape [N, C] (batch, classes), got {tuple(logits.shape)}"
        )
    if target.ndim != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target must have shape [N] = [{logits.shape[0]}] to match logits "
            f"{tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    if logits.device != target.device:
        raise ValueError(
            f"logits and target must be on the same device, got {logits.device} and {target.device}"
        )
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    num_classes = logits.shape[1]
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must be between 1 and the number of classes C={num_classes}, got k={k}")
    # compared as int64: torch has no min/max or comparisons for uint16/32/64 on the CPU (and a
    # uint64 label >= 2**63 wraps to a negative int64, so it is refused as out of range, not lost)
    labels = target.long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"target must hold class indices in [0, {num_classes - 1}], "
            f"got values in [{int(labels.min())}, {int(labels.max())}]"
        )
    if torch.isnan(logits).any():
        raise ValueError("logits contain NaN; a NaN score has no rank")


def topk_correct(logits: Tensor, target: Tensor, k: int) -> Tensor:
    """Per-sample top-k hit, with ties counted against the prediction.

    Args:
        logits: ``Tensor[N, C]``, floating point scores (NaN is an error; ±inf is allowed).
        target: ``Tensor[N]``, integer class indices in ``[0, C)``, same device as ``logits``.
        k: number of guesses, ``1 <= k <= C``.

    Returns:
        ``BoolTensor[N]`` on ``logits.device``: True where fewer than ``k`` other classes
        score at least as high as the true class. An empty batch gives an empty tensor.
    """
    _check_inputs(logits, target, k)
    return rivals(logits, target) < k


def rivals(logits: Tensor, target: Tensor) -> Tensor:
    """Per sample, how many other classes score at least as high as the true one (so the
    sample is a top-k hit when this is ``< k``), without :func:`topk_correct`'s input checks:
    a training loop calls it on every batch, and reading checks back would make a GPU wait for
    the host each time. A row holding NaN has no rank: it gets ``C``, a miss for every k.

    ``logits[N, C]`` floating, ``target[N]`` integer in ``[0, C)`` -> ``Tensor[N]`` int64.
    """
    true_score = logits.gather(1, target.long().unsqueeze(1))  # [N, 1]
    # Classes scoring >= the true class, minus the true class itself.
    count = (logits >= true_score).sum(dim=1) - 1  # [N]
    return torch.where(logits.isnan().any(dim=1), logits.shape[1], count)


def topk_accuracy(logits: Tensor, target: Tensor, k: int = 1) -> Tensor:
    """Fraction of samples whose label is in the top ``k`` (ties rule: see module docstring).

    Shapes as in :func:`topk_correct`. Returns a 0-dim float32 tensor on ``logits.device``.
    Raises ``ValueError`` for an empty batch: the accuracy of zero samples is undefined.
    """
    correct = topk_correct(logits, target, k)
    if correct.numel() == 0:
        raise ValueError("empty batch (N=0): top-k accuracy of zero samples is undefined")
    return correct.float().mean()


def topk_error(logits: Tensor, target: Tensor, k: int = 1) -> Tensor:
    """Top-k error = 1 - top-k accuracy: the fraction of samples whose label is *not* among
    the ``k`` highest scores. Same shapes, ties rule and errors as :func:`topk_accuracy`."""
    return 1.0 - topk_accuracy(logits, target, k)


def full_precision(logits: Tensor) -> Tensor:
    """``logits`` as they are when float32 or float64; bf16/fp16 (autocast) lifted to float32,
    so that ranking and softmax are not done in half precision (and float64 is not rounded)."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
