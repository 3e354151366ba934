"""cvlib.boxes against torchvision.ops, AnchorGenerator and Matcher, plus hand-made edge cases."""

from __future__ import annotations

import pytest
import torch
import torchvision.ops as tvops
from torch.testing import assert_close
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from cvlib import boxes as B


def random_boxes(n: int, gen: torch.Generator, dtype=torch.float32, extent: float = 100.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * extent
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * extent / 2 + 0.5
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.mark.parametrize("in_fmt", B.FORMATS)
@pytest.mark.parametrize("out_fmt", B.FORMATS)
def test_box_convert_matches_torchvision(gen, in_fmt, out_fmt):
    boxes = random_boxes(50, gen, torch.float64)
    assert_close(B.box_convert(boxes, in_fmt, out_fmt), tvops.box_convert(boxes, in_fmt, out_fmt))


def test_box_convert_round_trip_and_errors(gen):
    boxes = random_boxes(20, gen)
    assert_close(B.box_convert(B.box_convert(boxes, "xyxy", "cxcywh"), "cxcywh", "xyxy"), boxes)
    with pytest.raises(ValueError, match="in_fmt"):
        B.box_convert(boxes, "xywhr", "xyxy")
    with pytest.raises(ValueError, match="boxes"):
        B.box_convert(boxes[:, :3], "xyxy", "xywh")
    with pytest.raises(TypeError, match="boxes"):
        B.box_convert(boxes.long(), "xyxy", "xywh")


def test_voc_one_based_inclusive():
    # xmin=1..xmax=10 is the first ten pixels: continuous [0, 10), width 10
    voc = torch.tensor([[1, 1, 10, 10], [48, 240, 195, 371]])
    xyxy = B.voc_to_xyxy(voc)
    assert xyxy.dtype == torch.get_default_dtype()  # integer input: the default floating dtype
    assert B.voc_to_xyxy(voc.double()).dtype == torch.float64  # floating input keeps its dtype
    assert_close(xyxy, torch.tensor([[0.0, 0.0, 10.0, 10.0], [47.0, 239.0, 195.0, 371.0]]))
    # width in pixels = xmax - xmin + 1 (inclusive count) = continuous x2 - x1
    assert_close(B.box_convert(xyxy, "xyxy", "xywh")[:, 2], (voc[:, 2] - voc[:, 0] + 1).float())
    assert_close(B.xyxy_to_voc(xyxy), voc.float())
    # a one-pixel box (xmin == xmax) has area 1, not 0
    assert float(B.box_area(B.voc_to_xyxy(torch.tensor([[5, 5, 5, 5]])))[0]) == 1.0
    with pytest.raises(ValueError, match="start at 1"):
        B.voc_to_xyxy(torch.tensor([[0, 1, 10, 10]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_iou_and_giou_match_torchvision(gen, dtype):
    a, b = random_boxes(37, gen, dtype), random_boxes(23, gen, dtype)
    assert B.box_iou(a, b).shape == (37, 23)
    assert B.box_iou(a, b).dtype == dtype
    assert_close(B.box_iou(a, b), tvops.box_iou(a, b))
    assert_close(B.generalized_box_iou(a, b), tvops.generalized_box_iou(a, b))
    assert (B.box_iou(a, b) >= 0).all() and (B.box_iou(a, b) <= 1).all()
    assert (B.generalized_box_iou(a, b) >= -1).all()


def test_iou_hand_values_and_empty():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [4.0, 0.0, 6.0, 2.0]])
    assert_close(B.box_iou(a, b), torch.tensor([[1 / 7, 1.0, 0.0]]))
    # GIoU: the far box has hull 6x2=12, union 8: 0 - 4/12
    assert_close(B.generalized_box_iou(a, b)[0, 2], torch.tensor(-1 / 3))
    assert B.box_iou(torch.zeros(0, 4), b).shape == (0, 3)
    assert B.box_iou(a, torch.zeros(0, 4)).shape == (1, 0)
    # zero-area boxes: defined as 0 here (torchvision gives NaN for an empty union)
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert float(B.box_iou(point, point)) == 0.0
    assert torch.isnan(tvops.box_iou(point, point)).all()
    assert float(B.box_iou(point, a)) == 0.0


def test_degenerate_boxes_raise():
    bad = torch.tensor([[0.0, 0.0, 2.0, 2.0], [5.0, 0.0, 3.0, 2.0]])
    good = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    for fn in (B.box_iou, B.generalized_box_iou):
        with pytest.raises(ValueError, match="boxes1.*row 1"):
            fn(bad, good)
        with pytest.raises(ValueError, match="boxes2"):
            fn(good, bad)
    with pytest.raises(ValueError, match="degenerate"):
        B.box_area(bad)
    with pytest.raises(ValueError, match="gt_boxes"):
        B.assign_anchors(good, bad)
    with pytest.raises(TypeError, match="dtype"):
        B.box_iou(good, good.double())


def test_nms_matches_torchvision_with_ties(gen):
    boxes = random_boxes(300, gen, extent=60)
    for scores in (torch.rand(300, generator=gen), torch.randint(0, 4, (300,), generator=gen).float()):
        for thr in (0.0, 0.3, 0.5, 0.9, 1.0):
            assert torch.equal(B.nms(boxes, scores, thr), tvops.nms(boxes, scores, thr))
    # all scores equal and every box identical: the first one (input order) survives
    same = torch.tensor([[0.0, 0.0, 4.0, 4.0]]).repeat(5, 1)
    assert B.nms(same, torch.ones(5), 0.5).tolist() == [0] == tvops.nms(same, torch.ones(5), 0.5).tolist()


def test_nms_iou_exactly_at_threshold_survives():
    # IoU of these two is exactly 1/3 (intersection 1x2=... : [0,2]x[0,2] vs [1,3]x[0,2]: 2 / 6)
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8], dtype=torch.float64)
    assert float(B.box_iou(boxes[:1], boxes[1:])) == 1 / 3
    assert B.nms(boxes, scores, 1 / 3).tolist() == [0, 1] == tvops.nms(boxes, scores, 1 / 3).tolist()
    assert B.nms(boxes, scores, 0.33).tolist() == [0] == tvops.nms(boxes, scores, 0.33).tolist()


def test_nms_empty_and_errors():
    empty = torch.zeros(0, 4)
    assert B.nms(empty, torch.zeros(0), 0.5).dtype == torch.long
    assert B.nms(empty, torch.zeros(0), 0.5).numel() == 0
    assert B.batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).numel() == 0
    with pytest.raises(ValueError, match="scores"):
        B.nms(torch.zeros(2, 4), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        B.nms(torch.zeros(2, 4), torch.zeros(2), 1.5)
    with pytest.raises(ValueError, match="idxs"):
        B.batched_nms(torch.zeros(2, 4), torch.zeros(2), torch.zeros(2), 0.5)


def test_batched_nms_matches_torchvision(gen):
    boxes = random_boxes(400, gen, extent=60)
    idxs = torch.randint(0, 5, (400,), generator=gen)
    for scores in (torch.rand(400, generator=gen), torch.randint(0, 3, (400,), generator=gen).float()):
        ours, ref = B.batched_nms(boxes, scores, idxs, 0.4), tvops.batched_nms(boxes, scores, idxs, 0.4)
        assert set(ours.tolist()) == set(ref.tolist())
        assert torch.equal(scores[ours], scores[ref])  # same scores in the same (decreasing) order
    # two identical boxes of different classes both survive
    two = torch.tensor([[0.0, 0.0, 4.0, 4.0]] * 2)
    assert B.batched_nms(two, torch.tensor([1.0, 0.5]), torch.tensor([0, 1]), 0.5).tolist() == [0, 1]


def test_grid_anchors_match_anchor_generator():
    feature, stride = (5, 7), 16
    sizes, ratios = (32, 64, 128), (0.5, 1.0, 2.0)
    generator = AnchorGenerator((sizes,), (ratios,))
    images = ImageList(torch.zeros(1, 3, 5 * stride, 7 * stride), [(5 * stride, 7 * stride)])
    ref = generator(images, [torch.zeros(1, 4, *feature)])[0]
    ours = B.grid_anchors(feature, stride, sizes, ratios)
    assert ours.shape == ref.shape == (5 * 7 * 9, 4)
    # torchvision rounds each half-width/height to an integer: at most half a pixel apart
    assert (ours - ref).abs().max() <= 0.5
    square = [i for i in range(len(ours)) if (i % 9) // 3 == 1]  # ratio 1, even sizes: no rounding
    assert torch.equal(ours[square], ref[square])
    # every anchor has area size**2; centres on the grid with offset 0, cell centres with 0.5
    areas = B.box_area(ours).reshape(-1, 3, 3)
    assert_close(areas, torch.tensor(sizes, dtype=torch.float32).pow(2).expand_as(areas), rtol=1e-5, atol=1e-3)
    centred = B.box_convert(B.grid_anchors((2, 2), 8, (8,), (1.0,), offset=0.5), "xyxy", "cxcywh")
    assert centred[:, :2].tolist() == [[4, 4], [12, 4], [4, 12], [12, 12]]
    assert ours.dtype == torch.get_default_dtype()  # like AnchorGenerator: the default dtype
    double = B.grid_anchors(feature, stride, sizes, ratios, dtype=torch.float64)
    assert double.dtype == torch.float64 and torch.equal(double.to(ours.dtype), ours)
    with pytest.raises(ValueError, match="feature_size"):
        B.grid_anchors((0, 3), 8, (8,), (1.0,))


def test_assign_anchors_matches_matcher(gen):
    anchors = B.grid_anchors((10, 10), 8, (16, 32), (0.5, 1.0, 2.0))
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
    plain = Matcher(0.7, 0.3, allow_low_quality_matches=False)
    for _ in range(30):
        gt = random_boxes(int(torch.randint(1, 8, (1,), generator=gen)), gen, extent=60)
        labels, best = B.assign_anchors(anchors, gt)
        iou = B.box_iou(gt, anchors)
        assert torch.equal(labels, matcher(iou))
        assert torch.equal(B.assign_anchors(anchors, gt, force_best=False)[0], plain(iou))
        assert_close(best, iou.max(dim=0).values)


def test_assign_anchors_hand_cases():
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30], [0, 0, 10, 8]])
    gt = torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 40]])
    labels, best = B.assign_anchors(anchors, gt)
    # anchor 0 IoU 1 -> gt 0; anchor 1 IoU 0.5 -> ignored; anchor 2 IoU 0.25 < 0.3 but is gt 1's best -> forced
    # anchor 3 IoU 0.8 -> gt 0
    assert labels.tolist() == [0, B.BETWEEN, 1, 0]
    assert B.assign_anchors(anchors, gt, force_best=False)[0].tolist() == [0, B.BETWEEN, B.BELOW_LOW, 0]
    # tied best anchors for one ground truth are all forced
    tied = torch.tensor([[0.0, 0, 4, 4], [4, 0, 8, 4], [50, 50, 60, 60]])
    assert B.assign_anchors(tied, torch.tensor([[2.0, 0, 6, 4]]))[0].tolist() == [0, 0, B.BELOW_LOW]
    # no ground truth: everything is background (Matcher raises instead)
    labels, best = B.assign_anchors(anchors, torch.zeros(0, 4))
    assert labels.tolist() == [B.BELOW_LOW] * 4 and best.tolist() == [0.0] * 4
    with pytest.raises(ValueError):
        Matcher(0.7, 0.3)(torch.zeros(0, 4))
    assert B.assign_anchors(torch.zeros(0, 4), gt)[0].shape == (0,)
    # a ground truth that touches no anchor forces nothing
    far = torch.tensor([[100.0, 100, 110, 110]])
    assert B.assign_anchors(anchors, far)[0].tolist() == [B.BELOW_LOW] * 4
    # IoU exactly at the thresholds: 0.7 is positive, 0.3 is ignored (not background)
    a = torch.tensor([[0.0, 0, 10, 7], [0, 0, 10, 3]], dtype=torch.float64)
    g = torch.tensor([[0.0, 0, 10, 10]], dtype=torch.float64)
    assert B.assign_anchors(a, g, force_best=False)[0].tolist() == [0, B.BETWEEN]
    with pytest.raises(ValueError, match="low"):
        B.assign_anchors(a, g, high=0.3, low=0.7)
