"""Class imbalance: long-tailed splits, metrics that notice it, resampling, weighted and focal losses
(chapter 09).

Data-level fixes change *which* examples the model sees (:func:`oversample_indices`,
:func:`undersample_indices`, :class:`BalancedSampler`, :func:`random_translate` for augmenting the
copies of rare examples). Algorithm-level fixes change *how much* each example counts
(:func:`inverse_frequency_weights`, :func:`effective_number_weights`, :func:`sigmoid_focal_loss`,
:func:`softmax_focal_loss`). Labels are always ``int64`` class indices in ``[0, C)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Sampler

from ._checks import floating_tensor, index_tensor, integer, tensor

__all__ = [
    "long_tailed_counts", "long_tailed_indices", "confusion_matrix", "per_class_recall",
    "balanced_accuracy", "oversample_indices", "undersample_indices", "class_balanced_weights",
    "BalancedSampler", "random_translate", "inverse_frequency_weights", "effective_number_weights",
    "sigmoid_focal_loss", "softmax_focal_loss",
]

_REDUCTIONS = ("none", "mean", "sum")


def _check_labels(labels: Tensor, name: str = "labels", num_classes: int | None = None) -> None:
    index_tensor(labels, name)
    if labels.ndim != 1:
        raise ValueError(f"{name} must have shape [N], got {tuple(labels.shape)}")
    if labels.numel() and labels.min() < 0:
        raise ValueError(f"{name} must be non-negative class indices, got min {int(labels.min())}")
    if num_classes is not None and labels.numel() and labels.max() >= num_classes:
        raise ValueError(f"{name} must be < num_classes={num_classes}, got max {int(labels.max())}")


# --- long-tailed splits ----------------------------------------------------------------------

def long_tailed_counts(n_max: int, num_classes: int, imbalance_ratio: float) -> list[int]:
    """Exponential profile of Cui et al. 2019 / Cao et al. 2019: ``n_c = floor(n_max * r^(-c/(C-1)))``.

    Class 0 keeps ``n_max`` examples and class ``C-1`` keeps ``floor(n_max / r)`` (at least 1).
    Returns a list of ``num_classes`` ints, non-increasing.
    """
    integer(n_max, "n_max", 1)
    integer(num_classes, "num_classes", 2)
    if not isinstance(imbalance_ratio, (int, float)) or not 1 <= imbalance_ratio <= n_max:
        raise ValueError(f"imbalance_ratio must be a number in [1, n_max={n_max}], got {imbalance_ratio!r}")
    return [max(1, int(n_max * imbalance_ratio ** (-c / (num_classes - 1)) + 1e-9))
            for c in range(num_classes)]


def long_tailed_indices(labels: Tensor, counts: Sequence[int], *, generator: torch.Generator) -> Tensor:
    """Sorted indices of a random subset holding ``counts[c]`` examples of each class ``c``.

    Args:
        labels: ``Tensor[N]`` int class indices; class ``c`` must have at least ``counts[c]`` examples.
        counts: one int per class (e.g. from :func:`long_tailed_counts`).
        generator: the random stream that picks the examples (explicit, so the split is reproducible).
    Returns:
        ``LongTensor[sum(counts)]``, increasing.
    """
    _check_labels(labels, num_classes=len(counts))
    chosen = []
    for c, n in enumerate(counts):
        members = (labels == c).nonzero().flatten()  # [n_c]
        if n > len(members):
            raise ValueError(f"counts[{c}]={n} but labels hold only {len(members)} examples of class {c}")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:n]])
    return torch.cat(chosen).sort().values


# --- metrics -----------------------------------------------------------------------------------

def confusion_matrix(preds: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """``M[i, j]`` = number of examples of true class ``i`` predicted as ``j`` (sklearn's layout).

    ``preds``, ``target``: ``Tensor[N]`` int class indices. Returns ``LongTensor[C, C]``.
    """
    integer(num_classes, "num_classes", 1)
    _check_labels(preds, "preds", num_classes)
    _check_labels(target, "target", num_classes)
    if preds.shape != target.shape:
        raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} "
                         "must have the same shape")
    flat = target.long() * num_classes + preds.long()  # [N], one bin per (true, predicted) pair
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_recall(preds: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Recall of each class, ``M[c, c] / sum_j M[c, j]``: ``Tensor[C]`` float, NaN for a class absent
    from ``target`` (its recall is undefined, and it must not count as 0 or 1)."""
    m = confusion_matrix(preds, target, num_classes)
    return m.diagonal().double() / m.sum(dim=1).double()  # 0/0 = NaN


def balanced_accuracy(preds: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Mean of the per-class recalls over the classes present in ``target`` (as
    ``sklearn.metrics.balanced_accuracy_score``). 0-dim float64 tensor; an empty ``target`` is an error."""
    if isinstance(target, Tensor) and target.numel() == 0:
        raise ValueError("target is empty: balanced accuracy of zero samples is undefined")
    return per_class_recall(preds, target, num_classes).nanmean()


# --- data-level fixes ----------------------------------------------------------------------

def _by_class(labels: Tensor) -> list[Tensor]:
    _check_labels(labels)
    if labels.numel() == 0:
        raise ValueError("labels is empty")
    groups = [(labels == c).nonzero().flatten() for c in range(int(labels.max()) + 1)]
    return [g for g in groups if len(g)]  # a class with no examples cannot be resampled


def oversample_indices(labels: Tensor, *, generator: torch.Generator) -> Tensor:
    """Indices that repeat every class up to the largest class's count: each example of a class
    with ``n_c`` examples appears ``n_max // n_c`` times, plus ``n_max % n_c`` of them once more
    (drawn without replacement). Returns a shuffled ``LongTensor[K * n_max]`` (K classes present)."""
    groups = _by_class(labels)
    n_max = max(len(g) for g in groups)
    out = []
    for g in groups:
        extra = g[torch.randperm(len(g), generator=generator)[: n_max % len(g)]]
        out.append(torch.cat([g.repeat(n_max // len(g)), extra]))
    out = torch.cat(out)
    return out[torch.randperm(len(out), generator=generator)]


def undersample_indices(labels: Tensor, *, generator: torch.Generator) -> Tensor:
    """Indices keeping ``n_min`` random examples of every class (``n_min`` = the smallest class's
    count): a balanced subset that throws the rest away. Shuffled ``LongTensor[K * n_min]``."""
    groups = _by_class(labels)
    n_min = min(len(g) for g in groups)
    out = torch.cat([g[torch.randperm(len(g), generator=generator)[:n_min]] for g in groups])
    return out[torch.randperm(len(out), generator=generator)]


def class_balanced_weights(labels: Tensor) -> Tensor:
    """Per-example weights ``1 / n_{y_i}`` (``DoubleTensor[N]``) for
    ``torch.utils.data.WeightedRandomSampler``: every class then gets the same total weight."""
    _check_labels(labels)
    counts = torch.bincount(labels.long())  # [C]
    return 1.0 / counts[labels.long()].double()


class BalancedSampler(Sampler[int]):
    """Class-aware sampling from scratch (Shen et al. 2016): each draw picks a class uniformly
    among the classes present, then one of its examples uniformly, both with replacement.

    Same distribution as ``WeightedRandomSampler(class_balanced_weights(labels), num_samples)``,
    without building per-example weights. Yields ``num_samples`` indices into ``labels``.
    """

    def __init__(self, labels: Tensor, num_samples: int, *, generator: torch.Generator) -> None:
        integer(num_samples, "num_samples", 1)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.groups = _by_class(labels)
        self.num_samples = num_samples
        self.generator = generator

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        sizes = torch.tensor([len(g) for g in self.groups])  # [K]
        cls = torch.randint(len(self.groups), (self.num_samples,), generator=self.generator)  # [S]
        # a uniform position inside the chosen class: floor(u * n_c), u in [0, 1)
        u = torch.rand(self.num_samples, generator=self.generator, dtype=torch.float64)
        pos = (u * sizes[cls]).long()  # [S]
        members = torch.cat(self.groups)
        offsets = torch.cumsum(sizes, 0) - sizes  # [K], where each class starts in `members`
        return iter(members[offsets[cls] + pos].tolist())


def random_translate(images: Tensor, max_shift: int, *, fill: float, generator: torch.Generator) -> Tensor:
    """Shift each image by its own random integer offset ``(dy, dx)`` in ``[-max_shift, max_shift]``,
    filling the uncovered border with ``fill``. ``images``: ``Tensor[N, C, H, W]``; same shape out."""
    tensor(images, "images")
    if images.ndim != 4:
        raise ValueError(f"images must have shape [N, C, H, W], got {tuple(images.shape)}")
    integer(max_shift, "max_shift", 0)
    n, _, h, w = images.shape
    s = max_shift
    padded = F.pad(images, (s, s, s, s), value=fill)  # [N, C, H+2s, W+2s]
    offsets = torch.randint(0, 2 * s + 1, (n, 2), generator=generator)  # top-left corner of the crop
    return torch.stack([padded[i, :, t:t + h, l:l + w] for i, (t, l) in enumerate(offsets.tolist())])


# --- algorithm-level fixes ---------------------------------------------------------------------

def inverse_frequency_weights(counts: Tensor) -> Tensor:
    """Class weights ``N / (C * n_c)`` (scikit-learn's ``class_weight="balanced"``): a weighted
    sum over the training set gives every class the same total. ``counts``: ``Tensor[C]``, all > 0."""
    _check_counts(counts)
    counts = counts.double()
    return counts.sum() / (len(counts) * counts)


def effective_number_weights(counts: Tensor, beta: float) -> Tensor:
    """Class-balanced weights of Cui et al. 2019: ``w_c ∝ (1 - beta) / (1 - beta^{n_c})``, the inverse
    of the "effective number" of examples, scaled so the weights sum to ``C``.

    ``beta`` in ``[0, 1)``: 0 gives equal weights, ``beta -> 1`` approaches inverse frequency.
    """
    _check_counts(counts)
    _check_number(beta, "beta")
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be a number in [0, 1), got {beta!r}")
    n = counts.double()
    # (1 - b^n) / (1 - b), with 1 - b^n = -expm1(n log b) accurate for b close to 1; [C]
    effective = torch.ones_like(n) if beta == 0 else -torch.expm1(n * math.log(beta)) / (1 - beta)
    w = 1.0 / effective
    return w * len(w) / w.sum()


def _check_counts(counts: Tensor) -> None:
    tensor(counts, "counts")
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(f"counts must be a non-empty Tensor[C], got shape {tuple(counts.shape)}")
    if not (counts > 0).all():
        raise ValueError(f"counts must all be > 0, got {counts.tolist()}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()


def _check_number(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a Python number, got {type(value).__name__}")


def _check_focal(gamma: float, reduction: str) -> None:
    _check_number(gamma, "gamma")
    if not gamma >= 0:  # NaN fails too
        raise ValueError(f"gamma must be a number >= 0, got {gamma!r}")
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> Tensor:
    """Binary focal loss of Lin et al. 2017 (RetinaNet), torchvision's signature and conventions.

    ``FL = -alpha_t (1 - p_t)^gamma log(p_t)``, ``p = sigmoid(inputs)``, ``p_t = p`` where the target
    is 1 and ``1 - p`` where it is 0; ``alpha_t = alpha`` for positives, ``1 - alpha`` for negatives.

    Args:
        inputs: ``Tensor[*]`` float logits, any shape.
        targets: ``Tensor[*]`` floating (any floating dtype: the result has the promoted dtype, as
            torchvision), same shape, in ``[0, 1]`` (0/1 labels; soft labels allowed).
        alpha: in ``[0, 1]``, or ``-1`` for no class weighting (as torchvision).
        gamma: focusing parameter ``>= 0``; ``gamma = 0`` is (alpha-weighted) binary cross-entropy.
        reduction: ``"none"`` (``Tensor[*]``), ``"mean"`` or ``"sum"`` (0-dim; ``"mean"`` of no
            elements is NaN, as torch).

    Deliberate differences from ``torchvision.ops.sigmoid_focal_loss`` (refused with a clear error):
    ``gamma < 0`` (torchvision computes it: a loss that grows for easy examples) and ``alpha`` or
    ``gamma`` given as tensors (torchvision computes with 0-dim tensors) raise. Integer or bool
    ``targets`` raise ``TypeError``, as in torchvision.
    """
    floating_tensor(inputs, "inputs")
    floating_tensor(targets, "targets")
    if targets.shape != inputs.shape:
        raise ValueError(f"targets must have the shape of inputs {tuple(inputs.shape)}, "
                         f"got {tuple(targets.shape)}")
    _check_number(alpha, "alpha")
    if not (0 <= alpha <= 1 or alpha == -1):
        raise ValueError(f"alpha must be in [0, 1] or -1 (no weighting), got {alpha!r}")
    _check_focal(gamma, reduction)
    # -log p_t from the logits, as torch computes it: max(x, 0) - x t + log(1 + e^-|x|) with the
    # gradient sigmoid(x) - t. The shorter softplus(x) - x t subtracts two large numbers when
    # x >> 0 and t = 1, which in bfloat16 leaves 0 (a loss of 0.0146 at x = 4.2)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p = torch.sigmoid(inputs)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction)


def softmax_focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0, weight: Tensor | None = None,
                       reduction: str = "mean") -> Tensor:
    """Multi-class focal loss ``-w_y (1 - p_y)^gamma log p_y`` with ``p = softmax(logits)``.

    Args:
        logits: ``Tensor[N, C]`` float.
        target: ``Tensor[N]`` int class indices.
        gamma: ``>= 0``; with ``gamma = 0`` this equals ``F.cross_entropy(logits, target, weight=weight,
            reduction=reduction)``, including its weighted mean ``sum(w_y l) / sum(w_y)``.
        weight: optional ``Tensor[C]`` class weights (e.g. :func:`effective_number_weights`).
        reduction: ``"none"`` (``Tensor[N]``), ``"mean"`` or ``"sum"`` (0-dim).
    """
    floating_tensor(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape [N, C], got {tuple(logits.shape)}")
    _check_labels(target, "target", logits.shape[1])
    if len(target) != len(logits):
        raise ValueError(f"target must have shape [{len(logits)}], got {tuple(target.shape)}")
    if weight is not None:
        floating_tensor(weight, "weight")  # F.cross_entropy refuses integer weights too
        if weight.shape != (logits.shape[1],):
            raise ValueError(f"weight must have shape [C={logits.shape[1]}], got {tuple(weight.shape)}")
    _check_focal(gamma, reduction)
    log_p = F.log_softmax(logits, dim=1).gather(1, target.long()[:, None]).squeeze(1)  # [N], log p_y
    loss = -((1 - log_p.exp()) ** gamma) * log_p
    w = torch.ones_like(loss) if weight is None else weight.to(loss.dtype)[target.long()]  # [N], w_y
    loss = w * loss
    if reduction == "mean":
        return loss.sum() / w.sum()
    return _reduce(loss, reduction)
