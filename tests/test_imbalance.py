"""cvlib.imbalance: focal losses against torchvision and cross-entropy, metrics against
torchmetrics and scikit-learn, samplers by their class frequencies, resampling and weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chisquare
from sklearn.metrics import balanced_accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import WeightedRandomSampler
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_recall
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from cvlib import imbalance as I


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def value_and_grad(fn, x, *args, **kwargs):
    x = x.clone().requires_grad_(True)
    y = fn(x, *args, **kwargs)
    weights = torch.linspace(-1.0, 2.0, y.numel(), dtype=x.dtype).reshape(y.shape)
    (grad,) = torch.autograd.grad((y * weights).sum(), x)
    return y.detach(), grad


# --- focal losses ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha", [0.25, 0.0, 1.0, 0.7, -1])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 3.5])
def test_sigmoid_focal_loss_matches_torchvision(gamma, alpha, reduction, dtype):
    g = gen(1)
    x = (6 * torch.randn(7, 5, 3, generator=g)).to(dtype)
    x[0, 0] = torch.tensor([-80.0, 80.0, 0.0])  # saturated sigmoid, and the kink-free middle
    t = (torch.rand(7, 5, 3, generator=g) < 0.3).to(dtype)
    ours = value_and_grad(I.sigmoid_focal_loss, x, t, alpha, gamma, reduction)
    ref = value_and_grad(tv_sigmoid_focal_loss, x, t, alpha, gamma, reduction)
    torch.testing.assert_close(ours, ref)


def test_sigmoid_focal_loss_soft_targets_and_huge_logits():
    x = torch.tensor([-1e4, -200.0, 200.0, 1e4, 0.3])
    t = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.6])
    ours = value_and_grad(I.sigmoid_focal_loss, x, t, 0.25, 2.0, "none")
    assert torch.isfinite(ours[0]).all() and torch.isfinite(ours[1]).all()
    torch.testing.assert_close(ours, value_and_grad(tv_sigmoid_focal_loss, x, t, 0.25, 2.0, "none"))
    # saturated: p_t = 0, so the loss is alpha_t * |x|
    torch.testing.assert_close(ours[0][:4], torch.tensor([0.25e4, 0.25 * 200, 0.75 * 200, 0.75e4]))


def test_sigmoid_focal_loss_gamma0_is_weighted_bce():
    g = gen(2)
    x, t = torch.randn(50, generator=g), (torch.rand(50, generator=g) > 0.5).float()
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    torch.testing.assert_close(I.sigmoid_focal_loss(x, t, -1, 0.0), bce)
    torch.testing.assert_close(I.sigmoid_focal_loss(x, t, 0.25, 0.0), torch.where(t == 1, 0.25, 0.75) * bce)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_softmax_focal_loss_gamma0_is_cross_entropy(weighted, reduction):
    g = gen(3)
    logits = 5 * torch.randn(40, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 6, (40,), generator=g)
    w = torch.rand(6, generator=g, dtype=torch.float64) + 0.1 if weighted else None
    ours = value_and_grad(I.softmax_focal_loss, logits, target, 0.0, w, reduction)
    ref = value_and_grad(F.cross_entropy, logits, target, w, reduction=reduction)
    torch.testing.assert_close(ours, ref)


def test_softmax_focal_loss_against_a_slow_reference():
    g = gen(4)
    logits = 3 * torch.randn(20, 4, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (20,), generator=g)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    p = torch.softmax(logits, 1)
    slow = torch.stack([-w[y] * (1 - p[i, y]) ** 2 * torch.log(p[i, y])
                        for i, y in enumerate(target.tolist())])
    torch.testing.assert_close(I.softmax_focal_loss(logits, target, 2.0, w, "none"), slow)
    torch.testing.assert_close(I.softmax_focal_loss(logits, target, 2.0, w), slow.sum() / w[target].sum())
    assert torch.autograd.gradcheck(lambda z: I.softmax_focal_loss(z, target, 2.0, w),
                                    (logits.clone().requires_grad_(),))
    # focusing only ever lowers the loss of each example
    assert (I.softmax_focal_loss(logits, target, 2.0, None, "none")
            <= F.cross_entropy(logits, target, reduction="none")).all()


def test_focal_losses_reject_bad_arguments():
    x, t = torch.zeros(3), torch.ones(3)
    with pytest.raises(ValueError, match="alpha"):
        I.sigmoid_focal_loss(x, t, alpha=-0.5)  # torchvision accepts only -1 as "no weighting"
    with pytest.raises(ValueError, match="alpha"):
        tv_sigmoid_focal_loss(x, t, alpha=-0.5)
    with pytest.raises(ValueError, match="alpha"):
        I.sigmoid_focal_loss(x, t, alpha=1.5)
    with pytest.raises(ValueError, match="gamma"):
        I.sigmoid_focal_loss(x, t, gamma=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        I.sigmoid_focal_loss(x, t, reduction="avg")
    with pytest.raises(ValueError, match="targets"):
        I.sigmoid_focal_loss(x, torch.ones(4))
    with pytest.raises(TypeError, match="inputs"):
        I.sigmoid_focal_loss(torch.zeros(3, dtype=torch.long), t)
    with pytest.raises(ValueError, match="weight"):
        I.softmax_focal_loss(torch.zeros(2, 3), torch.tensor([0, 1]), weight=torch.ones(2))
    with pytest.raises(ValueError, match="target"):
        I.softmax_focal_loss(torch.zeros(2, 3), torch.tensor([0, 3]))


def _diverse_input_target_pair(gen, dtype, shape=(5, 2)):
    """torchvision's TestFocalLoss._generate_diverse_input_target_pair: logits of small, big and
    random probabilities against all-zero, all-one and random binary targets; [45, 2]."""
    inputs, targets = [], []
    ranges = {"small": (0.0, 0.2), "big": (0.8, 1.0), "random": (0.0, 1.0)}
    for p_range in ("small", "big", "random"):
        for t_kind in ("zeros", "ones", "random_binary"):
            low, high = ranges[p_range]
            p = (low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)).clamp(1e-6, 1 - 1e-6)
            inputs.append(torch.logit(p).to(dtype))
            t = {"zeros": torch.zeros(shape), "ones": torch.ones(shape),
                 "random_binary": torch.randint(0, 2, shape, generator=gen).double()}[t_kind]
            targets.append(t.to(dtype))
    return torch.cat(inputs), torch.cat(targets)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0, 2])
@pytest.mark.parametrize("alpha", [-1.0, 0.0, 0.58, 1.0])
def test_upstream_focal_loss_correct_ratio(alpha, gamma, dtype):
    """Upstream test_correct_ratio: focal / cross-entropy = alpha_t (1 - p_t)^gamma, and <= 1."""
    inputs, targets = _diverse_input_target_pair(gen(5), dtype)
    focal = I.sigmoid_focal_loss(inputs, targets, gamma=gamma, alpha=alpha, reduction="none")
    assert focal.dtype == dtype
    tol = {"atol": 1e-2, "rtol": 1e-2} if dtype in (torch.float16, torch.bfloat16) else {}
    torch.testing.assert_close(focal, tv_sigmoid_focal_loss(inputs, targets, alpha, gamma, "none"), **tol)
    x, t = inputs.double(), targets.double()  # the ratio in float64, from the rounded inputs
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    slack = 2e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-6  # half rounds the loss itself
    assert (focal.double() <= ce * (1 + slack) + slack).all()
    p = torch.sigmoid(x)
    p_t = p * t + (1 - p) * (1 - t)
    ratio = (1 - p_t) ** gamma * ((alpha * t + (1 - alpha) * (1 - t)) if alpha >= 0 else 1)
    # half types: 1 - p_t rounds to 0 for p_t near 1, in torchvision too (upstream skips them on CPU)
    torch.testing.assert_close(focal.double(), ratio * ce, atol=slack, rtol=max(slack, 1e-5))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_upstream_focal_loss_equal_ce_loss(reduction, dtype):
    """Upstream test_equal_ce_loss: alpha=-1, gamma=0 is binary cross-entropy, values and gradients."""
    inputs, targets = _diverse_input_target_pair(gen(6), dtype)
    ours = value_and_grad(I.sigmoid_focal_loss, inputs, targets, -1, 0, reduction)
    ref = value_and_grad(F.binary_cross_entropy_with_logits, inputs, targets, reduction=reduction)
    tol = {"atol": 2e-3, "rtol": 2e-3} if dtype == torch.float16 else {}
    torch.testing.assert_close(ours, ref, **tol)


def test_upstream_focal_loss_reduction_mode_and_empty_inputs():
    inputs, targets = _diverse_input_target_pair(gen(7), torch.float32)
    for fn in (I.sigmoid_focal_loss, tv_sigmoid_focal_loss):
        with pytest.raises(ValueError, match="reduction"):
            fn(inputs, targets, 0.25, 2, "xyz")
    for shape in ((0,), (0, 3), (4, 0)):
        empty = torch.zeros(shape)
        none = I.sigmoid_focal_loss(empty, empty)
        assert none.shape == tv_sigmoid_focal_loss(empty, empty).shape == shape
        assert I.sigmoid_focal_loss(empty, empty, reduction="sum").item() == 0.0
        assert torch.isnan(I.sigmoid_focal_loss(empty, empty, reduction="mean"))  # as torch's mean
        assert torch.isnan(tv_sigmoid_focal_loss(empty, empty, reduction="mean"))
    empty_logits = torch.zeros(0, 3)
    none = I.softmax_focal_loss(empty_logits, torch.zeros(0, dtype=torch.long), reduction="none")
    assert none.shape == (0,)
    assert torch.isnan(I.softmax_focal_loss(empty_logits, torch.zeros(0, dtype=torch.long)))
    assert torch.isnan(F.cross_entropy(empty_logits, torch.zeros(0, dtype=torch.long)))


def test_focal_loss_target_dtypes_as_torchvision():
    x, t = torch.randn(6, generator=gen(8)), (torch.rand(6, generator=gen(8)) > 0.5).float()
    # float64 targets promote the result to float64, as torchvision
    ours, ref = I.sigmoid_focal_loss(x, t.double()), tv_sigmoid_focal_loss(x, t.double())
    assert ours.dtype == ref.dtype == torch.float64
    torch.testing.assert_close(ours, ref)
    # torchvision refuses integer and bool targets; so does cvlib, with a TypeError naming them
    for bad in (t.long(), t.bool()):
        with pytest.raises((RuntimeError, NotImplementedError)):
            tv_sigmoid_focal_loss(x, bad)
        with pytest.raises(TypeError, match="targets"):
            I.sigmoid_focal_loss(x, bad)
    with pytest.raises(TypeError, match="targets"):
        I.sigmoid_focal_loss(x, t.tolist())


def test_focal_loss_differences_from_torchvision_are_refused():
    x, t = torch.randn(6, generator=gen(9)), (torch.rand(6, generator=gen(9)) > 0.5).float()
    # torchvision computes a negative gamma (the loss grows for easy examples) and tensor alpha
    assert torch.isfinite(tv_sigmoid_focal_loss(x, t, gamma=-1.0)).all()
    assert torch.isfinite(tv_sigmoid_focal_loss(x, t, alpha=torch.tensor(0.3))).all()
    with pytest.raises(ValueError, match="gamma"):
        I.sigmoid_focal_loss(x, t, gamma=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        I.sigmoid_focal_loss(x, t, gamma=float("nan"))  # torchvision: a NaN loss
    assert torch.isnan(tv_sigmoid_focal_loss(x, t, gamma=float("nan"))).all()
    with pytest.raises(TypeError, match="alpha"):
        I.sigmoid_focal_loss(x, t, alpha=torch.tensor(0.3))
    with pytest.raises(TypeError, match="gamma"):
        I.sigmoid_focal_loss(x, t, gamma=torch.tensor(2.0))
    with pytest.raises(ValueError, match="alpha"):
        I.sigmoid_focal_loss(x, t, alpha=float("nan"))
    with pytest.raises(TypeError, match="logits"):
        I.softmax_focal_loss(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="logits"):
        I.softmax_focal_loss(torch.zeros(3), torch.tensor([0]))
    with pytest.raises(RuntimeError):  # torch's cross-entropy refuses integer class weights ...
        F.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), weight=torch.tensor([1, 2, 1]))
    with pytest.raises(TypeError, match="weight"):  # ... and so does the focal loss that extends it
        I.softmax_focal_loss(torch.zeros(2, 3), torch.tensor([0, 1]), weight=torch.tensor([1, 2, 1]))


# --- metrics -------------------------------------------------------------------------------------

def test_metrics_match_sklearn_and_torchmetrics():
    g = gen(5)
    target = torch.randint(0, 7, (300,), generator=g)
    preds = torch.where(torch.rand(300, generator=g) < 0.6, target, torch.randint(0, 7, (300,), generator=g))
    m = I.confusion_matrix(preds, target, 7)
    assert m.tolist() == sk_confusion_matrix(target, preds, labels=list(range(7))).tolist()
    torch.testing.assert_close(I.per_class_recall(preds, target, 7).float(),
                               multiclass_recall(preds, target, num_classes=7, average=None))
    bal = I.balanced_accuracy(preds, target, 7)
    assert bal.item() == pytest.approx(balanced_accuracy_score(target, preds), abs=1e-12)
    macro = multiclass_accuracy(preds, target, num_classes=7, average="macro").item()
    assert bal.item() == pytest.approx(macro, abs=1e-6)


def test_balanced_accuracy_ignores_absent_classes_like_sklearn():
    target = torch.tensor([0, 0, 0, 1])
    preds = torch.tensor([0, 0, 2, 2])  # class 2 is predicted but never true
    recall = I.per_class_recall(preds, target, 3)
    assert recall[:2].tolist() == [2 / 3, 0.0] and recall[2].isnan()
    with pytest.warns(UserWarning):  # sklearn warns about the predicted-only class, then ignores it
        sk = balanced_accuracy_score(target, preds)
    assert I.balanced_accuracy(preds, target, 3).item() == pytest.approx(sk)
    with pytest.raises(ValueError, match="empty"):
        I.balanced_accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 3)
    with pytest.raises(ValueError, match="preds"):
        I.confusion_matrix(torch.tensor([3]), torch.tensor([0]), 3)
    with pytest.raises(TypeError, match="target"):
        I.confusion_matrix(torch.tensor([0]), torch.tensor([0.0]), 3)


# --- long-tailed splits, resampling, samplers -------------------------------------------------------

def test_long_tailed_counts_and_indices():
    assert I.long_tailed_counts(100, 10, 100) == [100, 59, 35, 21, 12, 7, 4, 2, 1, 1]
    counts = I.long_tailed_counts(5000, 10, 100)  # CIFAR-10-LT of Cui et al. 2019: 12,406 images
    assert counts[0] == 5000 and counts[-1] == 50 and sum(counts) == 12406
    assert I.long_tailed_counts(30, 3, 1) == [30, 30, 30]
    labels = torch.arange(10).repeat_interleave(120)
    idx = I.long_tailed_indices(labels, [100, 59, 35, 21, 12, 7, 4, 2, 1, 1], generator=gen(0))
    assert torch.bincount(labels[idx]).tolist() == [100, 59, 35, 21, 12, 7, 4, 2, 1, 1]
    assert len(idx.unique()) == len(idx) and (idx.diff() > 0).all()
    again = I.long_tailed_indices(labels, [100, 59, 35, 21, 12, 7, 4, 2, 1, 1], generator=gen(0))
    assert torch.equal(idx, again)
    with pytest.raises(ValueError, match="counts"):
        I.long_tailed_indices(labels, [121] + [1] * 9, generator=gen(0))
    with pytest.raises(ValueError, match="imbalance_ratio"):
        I.long_tailed_counts(10, 10, 0.5)


def test_over_and_undersampling_balance_the_classes():
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 1)
    over = I.oversample_indices(labels, generator=gen(0))
    assert torch.bincount(labels[over]).tolist() == [10, 10, 10]
    copies = torch.bincount(over, minlength=14)
    assert (copies[:10] == 1).all() and sorted(copies[10:13].tolist()) == [3, 3, 4] and copies[13] == 10
    under = I.undersample_indices(labels, generator=gen(0))
    assert torch.bincount(labels[under]).tolist() == [1, 1, 1] and len(under.unique()) == 3


def test_balanced_sampler_matches_weighted_random_sampler_frequencies():
    """Both samplers draw each class with probability 1/C; each example of a class equally often.
    Chi-square goodness of fit at a fixed seed; p > 0.01 would fail by chance 1% of the time for a
    random seed, and at these seeds it is a deterministic check."""
    labels = torch.tensor([0] * 100 + [1] * 20 + [2] * 5 + [3] * 1)
    n = 40_000
    ours = torch.tensor(list(I.BalancedSampler(labels, n, generator=gen(0))))
    ref = torch.tensor(list(WeightedRandomSampler(I.class_balanced_weights(labels), n, generator=gen(0))))
    for draws in (ours, ref):
        per_class = torch.bincount(labels[draws], minlength=4).numpy()
        assert chisquare(per_class).pvalue > 0.01, per_class
        assert (abs(per_class / n - 0.25) < 0.01).all()
        within = torch.bincount(draws[labels[draws] == 2], minlength=125)[120:125].numpy()
        assert chisquare(within).pvalue > 0.01, within
    assert len(I.BalancedSampler(labels, 7, generator=gen(0))) == 7
    with pytest.raises(TypeError, match="generator"):
        I.BalancedSampler(labels, 7, generator=None)


def test_class_weights():
    counts = torch.tensor([100, 10, 1])
    labels = torch.arange(3).repeat_interleave(counts)
    sk = compute_class_weight("balanced", classes=np.arange(3), y=labels.numpy())
    torch.testing.assert_close(I.inverse_frequency_weights(counts), torch.from_numpy(sk))
    torch.testing.assert_close(I.effective_number_weights(counts, 0.0), torch.ones(3, dtype=torch.float64))
    cb = I.effective_number_weights(counts, 0.999)
    beta = 0.999
    ref = torch.tensor([(1 - beta) / (1 - beta ** n) for n in (100, 10, 1)], dtype=torch.float64)
    torch.testing.assert_close(cb, ref * 3 / ref.sum())
    near_one = I.effective_number_weights(counts, 1 - 1e-9)  # approaches inverse frequency
    inv = 1 / counts.double()
    torch.testing.assert_close(near_one, inv * 3 / inv.sum(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="beta"):
        I.effective_number_weights(counts, 1.0)
    with pytest.raises(ValueError, match="counts"):
        I.inverse_frequency_weights(torch.tensor([3, 0]))


def test_random_translate():
    g = gen(6)
    x = torch.randn(20, 2, 5, 6, generator=g)
    out = I.random_translate(x, 2, fill=-1.0, generator=gen(7))
    offsets = torch.randint(0, 5, (20, 2), generator=gen(7))
    for i, (t, l) in enumerate(offsets.tolist()):
        dy, dx = 2 - t, 2 - l  # content moves down/right by (dy, dx)
        ref = torch.full_like(x[i], -1.0)
        ref[:, max(dy, 0):5 + min(dy, 0), max(dx, 0):6 + min(dx, 0)] = \
            x[i][:, max(-dy, 0):5 - max(dy, 0), max(-dx, 0):6 - max(dx, 0)]
        torch.testing.assert_close(out[i], ref)
    assert torch.equal(I.random_translate(x, 0, fill=0.0, generator=g), x)


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="n_max"):
        I.long_tailed_counts(100.0, 10, 10)
    with pytest.raises(ValueError, match="num_classes"):
        I.long_tailed_counts(100, 1, 10)
    with pytest.raises(TypeError, match="images"):
        I.random_translate([[0.0]], 1, fill=0.0, generator=gen())
    with pytest.raises(TypeError, match="max_shift"):
        I.random_translate(torch.zeros(1, 1, 4, 4), 1.5, fill=0.0, generator=gen())
    with pytest.raises(TypeError, match="counts"):
        I.inverse_frequency_weights([3, 4])
    with pytest.raises(TypeError, match="beta"):
        I.effective_number_weights(torch.tensor([3, 4]), "0.9")
    with pytest.raises(TypeError, match="labels"):
        I.class_balanced_weights(torch.tensor([0.0, 1.0]))
