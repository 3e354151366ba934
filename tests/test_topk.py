"""cvlib.topk: parity with torchmetrics and torch.topk, the tie rule, and bad input."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.classification import multiclass_accuracy

from cvlib.topk import topk_accuracy, topk_correct, topk_error

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def slow_reference(logits: torch.Tensor, target: torch.Tensor, k: int) -> list[bool]:
    """The tie rule spelled out with Python loops: fewer than k rivals score >= the label."""
    out = []
    for row, label in zip(logits.tolist(), target.tolist()):
        rivals = sum(1 for j, s in enumerate(row) if j != label and s >= row[label])
        out.append(rivals < k)
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("num_classes,k", [(2, 1), (10, 1), (10, 5), (100, 5), (1000, 5), (7, 7)])
def test_matches_torchmetrics_on_random_logits(device, num_classes, k):
    gen = torch.Generator().manual_seed(num_classes * 31 + k)
    logits = torch.randn(512, num_classes, generator=gen).to(device)
    target = torch.randint(0, num_classes, (512,), generator=gen).to(device)
    expected = multiclass_accuracy(logits, target, num_classes=num_classes, top_k=k, average="micro")
    torch.testing.assert_close(topk_accuracy(logits, target, k), expected)
    torch.testing.assert_close(topk_error(logits, target, k), 1 - expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_matches_torch_topk_without_ties(dtype):
    gen = torch.Generator().manual_seed(1)
    # a random permutation per row: distinct scores, exactly representable in every dtype
    logits = torch.argsort(torch.rand(300, 50, generator=gen), dim=1).to(dtype)
    target = torch.randint(0, 50, (300,), generator=gen)
    for k in (1, 3, 5, 50):
        in_topk = (logits.topk(k, dim=1).indices == target[:, None]).any(dim=1)
        assert torch.equal(topk_correct(logits, target, k), in_topk)


def test_ties_count_against_the_prediction():
    logits = torch.tensor([
        [1.0, 1.0, 0.0],   # label 0 tied with class 1 for first place
        [1.0, 1.0, 0.0],   # label 1, same tie
        [2.0, 1.0, 1.0],   # label 1 tied with class 2 for second place
        [0.0, 0.0, 0.0],   # constant scores
        [5.0, 0.0, 0.0],   # clear winner
    ])
    target = torch.tensor([0, 1, 1, 2, 0])
    assert topk_correct(logits, target, 1).tolist() == [False, False, False, False, True]
    assert topk_correct(logits, target, 2).tolist() == [True, True, False, False, True]
    assert topk_correct(logits, target, 3).tolist() == [True] * 5
    # a constant predictor gets no credit below k = C, whatever the labels
    const = torch.zeros(6, 4)
    labels = torch.arange(6) % 4
    assert topk_error(const, labels, 3).item() == 1.0
    assert topk_error(const, labels, 4).item() == 0.0


def test_ties_against_slow_reference():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randint(0, 4, (400, 8), generator=gen).float()  # many ties
    target = torch.randint(0, 8, (400,), generator=gen)
    for k in range(1, 9):
        assert topk_correct(logits, target, k).tolist() == slow_reference(logits, target, k)


def test_infinities_are_scores():
    logits = torch.tensor([[float("inf"), 0.0], [float("-inf"), 0.0], [float("-inf"), float("-inf")]])
    target = torch.tensor([0, 0, 0])
    assert topk_correct(logits, target, 1).tolist() == [True, False, False]


def test_accepts_any_integer_label_dtype_and_returns_float32_scalar():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    # uint16/32/64 have no min, max or comparisons on the CPU: the range check must not need them
    for dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.uint16, torch.uint32,
                  torch.uint64):
        result = topk_accuracy(logits, torch.tensor([1, 1], dtype=dtype))
        assert result.dtype == torch.float32 and result.shape == ()
        assert result.item() == 0.5


def test_result_is_differentiable_free_and_on_input_device():
    logits = torch.randn(4, 3, requires_grad=True)
    out = topk_error(logits, torch.tensor([0, 1, 2, 0]), 2)
    assert not out.requires_grad and out.device == logits.device


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_empty_batch(dtype):
    """N = 0: the per-sample hits are an empty tensor for every valid k, a rate of zero samples is
    refused (torchmetrics 1.9 fails inside a reshape), and k is still checked against C."""
    from cvlib.topk import rivals

    logits, target = torch.empty(0, 5, dtype=dtype), torch.empty(0, dtype=torch.long)
    for k in range(1, 6):
        hits = topk_correct(logits, target, k)
        assert hits.shape == (0,) and hits.dtype == torch.bool
        for metric in (topk_accuracy, topk_error):
            with pytest.raises(ValueError, match="empty batch"):
                metric(logits, target, k)
    assert rivals(logits, target).shape == (0,)
    with pytest.raises(ValueError, match="C=5, got k=6"):
        topk_correct(logits, target, 6)
    with pytest.raises(ValueError, match="C=0, got k=1"):
        topk_correct(torch.empty(0, 0, dtype=dtype), target, 1)


@pytest.mark.parametrize(
    "logits,target,k,error,match",
    [
        (torch.zeros(2, 3), torch.tensor([0, 1]), 4, ValueError, r"k must be between 1 and .* C=3, got k=4"),
        (torch.zeros(2, 3), torch.tensor([0, 1]), 0, ValueError, "got k=0"),
        (torch.zeros(2, 3), torch.tensor([0, 1]), 1.0, TypeError, "k must be an int"),
        (torch.zeros(2, 3), torch.tensor([0, 1]), True, TypeError, "k must be an int"),
        (torch.zeros(3), torch.tensor([0, 1, 2]), 1, ValueError, r"logits must have shape \[N, C\]"),
        (torch.zeros(2, 3, 4), torch.tensor([0, 1]), 1, ValueError, r"logits must have shape \[N, C\]"),
        (torch.zeros(2, 3), torch.tensor([[0], [1]]), 1, ValueError, r"target must have shape \[N\]"),
        (torch.zeros(2, 3), torch.tensor([0, 1, 2]), 1, ValueError, r"target must have shape \[N\] = \[2\]"),
        (torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]), 1, TypeError, "logits must have a floating dtype"),
        (torch.zeros(2, 3), torch.tensor([0.0, 1.0]), 1, TypeError, "target must hold integer indices"),
        (torch.zeros(2, 3), torch.tensor([True, False]), 1, TypeError, "target must hold integer indices"),
        (torch.zeros(2, 3), torch.tensor([0, 1], dtype=torch.complex64), 1, TypeError, "target must hold integer"),
        (torch.zeros(2, 3, dtype=torch.complex64), torch.tensor([0, 1]), 1, TypeError, "logits must have a floating"),
        (torch.zeros(2, 3), torch.tensor([0, 1]), -1, ValueError, "got k=-1"),
        (torch.zeros(2, 1), torch.tensor([0, 0]), 2, ValueError, r"C=1, got k=2"),
        (torch.zeros(2, 0), torch.tensor([0, 0]), 1, ValueError, r"C=0, got k=1"),
        (torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor(1), TypeError, "k must be an int, got Tensor"),
        (torch.tensor(1.0), torch.tensor([0]), 1, ValueError, r"logits must have shape \[N, C\]"),
        (torch.zeros(2, 3), torch.tensor(1), 1, ValueError, r"target must have shape \[N\] = \[2\]"),
        (torch.zeros(2, 3), torch.tensor([2**63 + 1, 0], dtype=torch.uint64), 1, ValueError, "class indices in"),
        (torch.zeros(2, 3), torch.tensor([0, 3]), 1, ValueError, r"class indices in \[0, 2\]"),
        (torch.zeros(2, 3), torch.tensor([-1, 0]), 1, ValueError, r"class indices in \[0, 2\]"),
        ([[0.0, 1.0]], torch.tensor([0]), 1, TypeError, "logits must be a torch.Tensor"),
        (torch.zeros(1, 2), [0], 1, TypeError, "target must be a torch.Tensor"),
        (torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]), 1, ValueError, "NaN"),
    ],
)
def test_bad_input_is_named(logits, target, k, error, match):
    with pytest.raises(error, match=match):
        topk_error(logits, target, k)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same device"):
        topk_error(torch.zeros(2, 3, device="cuda"), torch.tensor([0, 1]), 1)


def test_rivals_is_the_unchecked_rule_of_topk_correct():
    from cvlib.topk import rivals

    g = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 4, (50, 6), generator=g).float()  # many ties
    target = torch.randint(0, 6, (50,), generator=g)
    for k in range(1, 7):
        assert torch.equal(rivals(logits, target) < k, topk_correct(logits, target, k))
    logits[3, 2] = float("nan")
    assert rivals(logits, target)[3] == 6  # a NaN row has no rank: a miss for every k


def test_full_precision_lifts_half_precision_only():
    from cvlib.topk import full_precision

    x64 = torch.randn(3, 4, dtype=torch.float64)
    assert full_precision(x64) is x64
    assert full_precision(x64.float()).dtype == torch.float32
    assert full_precision(x64.to(torch.bfloat16)).dtype == torch.float32
    assert full_precision(x64.half()).dtype == torch.float32


# -- torchmetrics' own cases ------------------------------------------------------------------------
# After torchmetrics' tests/unittests/classification/test_accuracy.py (Lightning-AI/torchmetrics):
# `test_top_k` (its `_mc_k_*` inputs), `test_multiclass_accuracy_with_top_k` and
# `test_multiclass_accuracy_top_k_equivalence`, as far as cvlib's functions go: multiclass,
# `average="micro"` (cvlib has no per-class averages, no `ignore_index`, no extra dimensions).
# torchmetrics breaks ties with `torch.topk`, cvlib counts them against the prediction, so the
# twin is compared only on scores without ties (asserted), and a tie-heavy case checks the order.

_MC_K_PREDS = [[0.35, 0.4, 0.25], [0.1, 0.5, 0.4], [0.2, 0.1, 0.7]]
_MC_K_TARGET = [0, 1, 2]
_MC_K_PREDS2 = [[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.9, 0.1, 0.0]]
_MC_K_TARGETS2 = [0, 0, 2]


def _twin(logits, target, k):
    return multiclass_accuracy(logits, target, num_classes=logits.shape[1], top_k=k, average="micro")


def _has_ties(logits):
    ordered = logits.sort(dim=1).values
    return bool((ordered[:, 1:] == ordered[:, :-1]).any())


@pytest.mark.parametrize(
    "k,preds,target,expected",
    [
        (1, _MC_K_PREDS, _MC_K_TARGET, 2 / 3),    # torchmetrics: micro 2/3
        (2, _MC_K_PREDS, _MC_K_TARGET, 3 / 3),    # torchmetrics: micro 3/3
        (3, _MC_K_PREDS, _MC_K_TARGET, 3 / 3),
        (1, _MC_K_PREDS2, _MC_K_TARGETS2, 2 / 3),  # torchmetrics checks macro (1/2) here; micro:
        (2, _MC_K_PREDS2, _MC_K_TARGETS2, 2 / 3),  # label 2 is ranked last in every row
        (3, _MC_K_PREDS2, _MC_K_TARGETS2, 3 / 3),
    ],
)
def test_torchmetrics_top_k_cases(k, preds, target, expected):
    preds, target = torch.tensor(preds), torch.tensor(target)
    assert not _has_ties(preds)
    torch.testing.assert_close(topk_accuracy(preds, target, k), torch.tensor(expected))
    torch.testing.assert_close(topk_accuracy(preds, target, k), _twin(preds, target, k))
    torch.testing.assert_close(topk_error(preds, target, k), 1 - torch.tensor(expected))


def test_torchmetrics_top_k_random_and_single_sample():
    """torchmetrics' `_mc_k_preds3` (512 x 10 uniform scores, labels 0..9 in turn) and
    `_mc_k_preds4` (its first sample alone), for every k, against the twin."""
    gen = torch.Generator().manual_seed(3)
    preds, target = torch.rand(512, 10, generator=gen), torch.arange(512) % 10
    assert not _has_ties(preds)
    for logits, labels in ((preds, target), (preds[:1], target[:1])):
        for k in range(1, 11):
            torch.testing.assert_close(topk_accuracy(logits, labels, k), _twin(logits, labels, k))


def test_accuracy_grows_with_k_and_is_one_at_k_equals_c():
    """torchmetrics' `test_multiclass_accuracy_with_top_k`: non-decreasing in k, 1 at k = C."""
    gen = torch.Generator().manual_seed(4)
    preds = torch.randn(200, 5, generator=gen).softmax(dim=-1)
    target = torch.randint(0, 5, (200,), generator=gen)
    assert not _has_ties(preds)
    accuracies = [topk_accuracy(preds, target, k) for k in range(1, 6)]
    for k, acc in enumerate(accuracies, start=1):
        torch.testing.assert_close(acc, _twin(preds, target, k))
    assert all(a <= b for a, b in zip(accuracies, accuracies[1:]))
    assert accuracies[-1].item() == 1.0 and accuracies[0].item() < 1.0


@pytest.mark.parametrize("num_classes,k", [(5, 3), (10, 5)])
def test_top_k_is_top_1_of_the_corrected_predictions(num_classes, k):
    """torchmetrics' `test_multiclass_accuracy_top_k_equivalence`: predict the label where it is
    among the top k and the top-1 class otherwise; that prediction's top-1 accuracy is the top-k
    accuracy (torchmetrics' top-1 of class-index predictions as the reference)."""
    gen = torch.Generator().manual_seed(num_classes)
    preds = torch.randn(200, num_classes, generator=gen).softmax(dim=-1)
    target = torch.randint(0, num_classes, (200,), generator=gen)
    assert not _has_ties(preds)
    top = preds.argsort(dim=1, descending=True)[:, :k]  # [N, k]
    corrected = torch.where((top == target[:, None]).any(dim=1), target, top[:, 0])  # [N]
    reference = multiclass_accuracy(corrected, target, num_classes=num_classes, top_k=1, average="micro")
    torch.testing.assert_close(topk_accuracy(preds, target, k), reference)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_matches_torchmetrics_in_every_floating_dtype(dtype):
    """Half, bfloat16 and double logits give torchmetrics' value, as a float32 0-dim tensor."""
    gen = torch.Generator().manual_seed(5)
    # distinct integers per row (a permutation of 0..C-1, scaled): exact in every dtype, no ties
    logits = (torch.argsort(torch.rand(300, 20, generator=gen), dim=1) - 10).to(dtype) / 4
    target = torch.randint(0, 20, (300,), generator=gen)
    assert not _has_ties(logits)
    for k in (1, 2, 5, 20):
        got = topk_accuracy(logits, target, k)
        assert got.dtype == torch.float32 and got.shape == ()
        torch.testing.assert_close(got, _twin(logits, target, k).float())


def test_ties_never_score_above_torchmetrics():
    """With ties (random bfloat16 logits round to equal values) torchmetrics credits whichever tied
    class `torch.topk` lists; cvlib does not, so it is never higher, and lower somewhere here."""
    gen = torch.Generator().manual_seed(6)
    logits = torch.randint(0, 3, (400, 10), generator=gen).to(torch.bfloat16)
    target = torch.randint(0, 10, (400,), generator=gen)
    assert _has_ties(logits)
    gaps = [(_twin(logits, target, k) - topk_accuracy(logits, target, k)).item() for k in range(1, 11)]
    assert min(gaps) >= 0 and max(gaps) > 0
    assert gaps[-1] == 0  # k = C: both 1


def test_k_above_c_is_a_value_error_as_in_torchmetrics():
    logits, target = torch.zeros(2, 3), torch.tensor([0, 1])
    with pytest.raises(ValueError):
        multiclass_accuracy(logits, target, num_classes=3, top_k=4)
    with pytest.raises(ValueError, match="k must be between 1 and"):
        topk_accuracy(logits, target, 4)
