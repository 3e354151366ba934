"""cvlib.metrics: parity with torchmetrics and torch.topk, the tie rule, and bad input."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.classification import multiclass_accuracy

from cvlib.metrics import topk_accuracy, topk_correct, topk_error

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
    for dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        result = topk_accuracy(logits, torch.tensor([1, 1], dtype=dtype))
        assert result.dtype == torch.float32 and result.shape == ()
        assert result.item() == 0.5


def test_result_is_differentiable_free_and_on_input_device():
    logits = torch.randn(4, 3, requires_grad=True)
    out = topk_error(logits, torch.tensor([0, 1, 2, 0]), 2)
    assert not out.requires_grad and out.device == logits.device


def test_empty_batch():
    logits, target = torch.empty(0, 5), torch.empty(0, dtype=torch.long)
    assert topk_correct(logits, target, 5).shape == (0,)
    with pytest.raises(ValueError, match="empty batch"):
        topk_error(logits, target, 1)


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
        (torch.zeros(2, 3), torch.tensor([0.0, 1.0]), 1, TypeError, "target must hold integer class indices"),
        (torch.zeros(2, 3), torch.tensor([True, False]), 1, TypeError, "target must hold integer class indices"),
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
    from cvlib.metrics import rivals

    g = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 4, (50, 6), generator=g).float()  # many ties
    target = torch.randint(0, 6, (50,), generator=g)
    for k in range(1, 7):
        assert torch.equal(rivals(logits, target) < k, topk_correct(logits, target, k))
    logits[3, 2] = float("nan")
    assert rivals(logits, target)[3] == 6  # a NaN row has no rank: a miss for every k


def test_full_precision_lifts_half_precision_only():
    from cvlib.metrics import full_precision

    x64 = torch.randn(3, 4, dtype=torch.float64)
    assert full_precision(x64) is x64
    assert full_precision(x64.float()).dtype == torch.float32
    assert full_precision(x64.to(torch.bfloat16)).dtype == torch.float32
    assert full_precision(x64.half()).dtype == torch.float32
