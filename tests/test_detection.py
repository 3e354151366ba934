"""cvlib.detection: synthetic shapes, box coding against torchvision, AP on hand cases, a short training run."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close
from torchvision.models.detection._utils import BoxCoder

from cvlib import boxes as B
from cvlib import detection as D


def test_make_shapes_boxes_are_exact_and_disjoint():
    gen = torch.Generator().manual_seed(0)
    images, boxes, labels = D.make_shapes(40, gen, image_size=32)
    assert images.shape == (40, 1, 32, 32)
    for img, bx, lb in zip(images, boxes, labels):
        assert 1 <= len(bx) <= 3 and bx.shape[1] == 4 and lb.shape == (len(bx),)
        assert set(lb.tolist()) <= {0, 1}
        iou = B.box_iou(bx, bx) - torch.eye(len(bx))
        assert (iou == 0).all(), "objects must not overlap"
        bright = img[0] >= 0.6
        for (x1, y1, x2, y2), c in zip(bx.long().tolist(), lb.tolist()):
            inside = bright[y1:y2, x1:x2]
            # the box is tight: every edge row/column holds an object pixel
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            if c == 0:
                assert inside.all(), "a square fills its box"
            else:
                assert not inside[0, 0], "a disc leaves the box corners dark"
        covered = torch.zeros_like(bright)
        for x1, y1, x2, y2 in bx.long().tolist():
            covered[y1:y2, x1:x2] = True
        assert not (bright & ~covered).any(), "no object pixel outside the boxes"
    same = D.make_shapes(40, torch.Generator().manual_seed(0), image_size=32)
    assert torch.equal(same[0], images) and all(torch.equal(a, b) for a, b in zip(same[1], boxes))
    with pytest.raises(ValueError, match="n"):
        D.make_shapes(0, gen)


def test_make_shapes_follows_the_dtype():
    assert D.make_shapes(4, torch.Generator().manual_seed(0))[0].dtype == torch.get_default_dtype()
    images, boxes, _ = D.make_shapes(4, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert images.dtype == torch.float64 and all(b.dtype == torch.float64 for b in boxes)
    with pytest.raises(TypeError, match="dtype"):
        D.make_shapes(4, torch.Generator().manual_seed(0), dtype=torch.int64)


def test_box_coding_matches_torchvision_boxcoder():
    gen = torch.Generator().manual_seed(1)
    xy = torch.rand(50, 2, generator=gen) * 50
    anchors = torch.cat([xy, xy + torch.rand(50, 2, generator=gen) * 20 + 2], dim=1)
    gt = anchors + torch.randn(50, 4, generator=gen)
    gt = torch.cat([torch.minimum(gt[:, :2], gt[:, 2:] - 1), torch.maximum(gt[:, 2:], gt[:, :2] + 1)], dim=1)
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    deltas = D.encode_boxes(gt, anchors)
    assert_close(deltas, coder.encode_single(gt, anchors))
    assert_close(D.decode_boxes(deltas, anchors), gt, atol=1e-4, rtol=1e-5)
    assert_close(D.decode_boxes(deltas, anchors), coder.decode_single(deltas, anchors))
    huge = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    assert torch.isfinite(D.decode_boxes(huge, anchors[:1])).all()  # log-size clamp as torchvision


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_box_coding_every_dtype_and_no_boxes(dtype):
    gen = torch.Generator().manual_seed(2)
    xy = torch.rand(30, 2, generator=gen, dtype=torch.float64) * 50
    anchors = torch.cat([xy, xy + torch.rand(30, 2, generator=gen, dtype=torch.float64) * 20 + 2], dim=1)
    gt = anchors + torch.rand(30, 4, generator=gen, dtype=torch.float64) - 0.5
    anchors, gt = anchors.to(dtype), gt.to(dtype)
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    deltas = D.encode_boxes(gt, anchors)
    assert deltas.dtype == dtype
    assert torch.equal(deltas, coder.encode_single(gt, anchors))  # the same arithmetic, any dtype
    assert torch.equal(D.decode_boxes(deltas, anchors), coder.decode_single(deltas, anchors))
    empty = torch.zeros(0, 4, dtype=dtype)
    assert D.encode_boxes(empty, empty).shape == coder.encode_single(empty, empty).shape == (0, 4)
    assert D.decode_boxes(empty, empty).shape == coder.decode_single(empty, empty).shape == (0, 4)


def test_box_coding_refuses_what_boxcoder_gets_wrong():
    anchors = torch.tensor([[0.0, 0, 10, 10], [5, 5, 25, 15]])
    gt = torch.tensor([[1.0, 1, 9, 12], [4, 6, 20, 15]])
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    assert coder.encode_single(gt, anchors[:1]).shape == (2, 4)  # silently broadcast
    with pytest.raises(ValueError, match="shape"):
        D.encode_boxes(gt, anchors[:1])
    with pytest.raises(ValueError, match="shape"):
        D.decode_boxes(torch.zeros(2, 3), anchors)
    flat = torch.tensor([[0.0, 0, 0, 10], [5, 5, 25, 15]])  # a zero-width anchor
    assert torch.isinf(coder.encode_single(gt, flat)).any()
    with pytest.raises(ValueError, match="anchors"):
        D.encode_boxes(gt, flat)
    with pytest.raises(TypeError, match="deltas"):
        D.decode_boxes(torch.zeros(2, 4, dtype=torch.long), anchors)
    with pytest.raises(TypeError, match="gt"):
        D.encode_boxes(gt.tolist(), anchors)
    with pytest.raises(TypeError, match="dtype"):
        D.encode_boxes(gt.double(), anchors)


def _dets(*rows):
    """rows of (image, x1, y1, x2, y2, score, label) -> per-image detections for 2 images."""
    out = []
    for i in range(2):
        r = [row for row in rows if row[0] == i]
        out.append((torch.tensor([row[1:5] for row in r], dtype=torch.float32).reshape(-1, 4),
                    torch.tensor([row[5] for row in r]), torch.tensor([row[6] for row in r], dtype=torch.long)))
    return out


def test_average_precision_hand_cases():
    gt_boxes = [torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), torch.tensor([[0.0, 0, 10, 10]])]
    gt_labels = [torch.tensor([0, 0]), torch.tensor([1])]
    perfect = _dets((0, 0, 0, 10, 10, 0.9, 0), (0, 20, 20, 30, 30, 0.8, 0), (1, 0, 0, 10, 10, 0.7, 1))
    assert D.average_precision(perfect, gt_boxes, gt_labels, 2).tolist() == [1.0, 1.0]
    # class 0: TP (0.9), FP duplicate (0.8), TP (0.7): precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    # envelope: 1 up to recall 1/2, then 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    dup = _dets((0, 0, 0, 10, 10, 0.9, 0), (0, 1, 0, 10, 10, 0.8, 0), (0, 20, 20, 30, 30, 0.7, 0))
    ap = D.average_precision(dup, gt_boxes, gt_labels, 2)
    assert abs(float(ap[0]) - 5 / 6) < 1e-12 and float(ap[1]) == 0.0
    # a wrong-class detection is a false positive for its class and finds nothing for the other
    wrong = _dets((1, 0, 0, 10, 10, 0.9, 0))
    assert D.average_precision(wrong, gt_boxes, gt_labels, 2).tolist() == [0.0, 0.0]
    # IoU below the threshold is a miss; a class without ground truth is NaN
    shifted = _dets((0, 6, 0, 16, 10, 0.9, 0))  # IoU 4/16 with the first box
    assert float(D.average_precision(shifted, gt_boxes, gt_labels, 2)[0]) == 0.0
    assert float(D.average_precision(shifted, gt_boxes, gt_labels, 2, iou_threshold=0.25)[0]) == 0.5
    assert math.isnan(float(D.average_precision(perfect, gt_boxes, gt_labels, 3)[2]))
    scores = D.detection_scores(perfect, gt_boxes, gt_labels, 2)
    assert scores == {"mAP@0.5": 1.0, "recall@0.5": 1.0, "mean IoU": 1.0}
    with pytest.raises(ValueError, match="one entry per image"):
        D.average_precision(perfect[:1], gt_boxes, gt_labels, 2)


@pytest.mark.parametrize("make", [D.OneStageDetector, D.TwoStageDetector])
def test_detectors_shapes_and_a_short_training_run(make):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    images, boxes, labels = D.make_shapes(48, gen)
    model = make(width=16)
    assert model.anchors.shape == (8 * 8 * 3, 4)
    classes, regs = model.targets(boxes, labels, 0.5, 0.4)
    assert classes.shape == (48, 192) and regs.shape == (48, 192, 4)
    assert ((classes >= 0).sum(dim=1) >= 1).all(), "every image has a positive anchor (forced best match)"
    history = D.train_detector(model, images, boxes, labels, epochs=4, generator=torch.Generator().manual_seed(0))
    assert len(history) == 4 and history[-1] < history[0]
    dets = model.detect(images[:4])
    assert len(dets) == 4
    for bx, sc, lb in dets:
        assert bx.shape == (len(sc), 4) and lb.shape == sc.shape and len(sc) <= 20
        assert ((sc > 0.05) & (sc <= 1)).all()


def test_make_shapes_argument_types():
    with pytest.raises(TypeError, match="n"):
        D.make_shapes(2.0, torch.Generator())
    with pytest.raises(TypeError, match="generator"):
        D.make_shapes(2, 0)
