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
        B.box_convert(boxes > 0, "xyxy", "xywh")  # bool is no coordinate
    with pytest.raises(TypeError, match="boxes"):
        B.box_convert(boxes.tolist(), "xyxy", "xywh")


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
    with pytest.raises(TypeError, match="idxs"):  # torchvision also takes float categories
        B.batched_nms(torch.zeros(2, 4), torch.zeros(2), torch.zeros(2), 0.5)
    assert tvops.batched_nms(torch.tensor([[0.0, 0, 1, 1]] * 2), torch.ones(2), torch.zeros(2), 0.5).tolist() == [0]


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
    with pytest.raises(ValueError, match="stride"):  # NaN would give NaN anchors
        B.grid_anchors((2, 3), float("nan"), (8,), (1.0,))
    with pytest.raises(ValueError, match="sizes"):
        B.grid_anchors((2, 3), 8, (float("nan"),), (1.0,))


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


# --- upstream cases: torchvision's test/test_ops.py (TestBoxConvert, TestBoxArea, TestBoxIou,
# TestGeneralizedBoxIou, TestNMS), run against cvlib and, where it has a twin, against torchvision

INT_BOXES = [[0, 0, 100, 100], [0, 0, 50, 50], [200, 200, 300, 300], [0, 0, 25, 25]]
INT_BOXES2 = [[0, 0, 100, 100], [0, 0, 50, 50], [200, 200, 300, 300]]
FLOAT_BOXES = [[285.3538, 185.5758, 1193.5110, 851.4551], [285.1472, 188.7374, 1192.4984, 851.0669],
               [279.2440, 197.9812, 1189.4746, 849.2019]]
FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
INTS = [torch.int8, torch.int16, torch.int32, torch.int64]
CONVERT_CASES = {  # upstream's hand values: the same 4 boxes in each format
    "xyxy": [[0, 0, 100, 100], [0, 0, 0, 0], [10, 15, 30, 35], [23, 35, 93, 95]],
    "xywh": [[0, 0, 100, 100], [0, 0, 0, 0], [10, 15, 20, 20], [23, 35, 70, 60]],
    "cxcywh": [[50, 50, 100, 100], [0, 0, 0, 0], [20, 25, 20, 20], [58, 65, 70, 60]],
}


@pytest.mark.parametrize("dtype", FLOATS + INTS)
def test_upstream_box_convert_hand_values_and_dtypes(gen, dtype):
    for in_fmt, rows in CONVERT_CASES.items():
        boxes = torch.tensor(rows, dtype=dtype)
        for out_fmt, expected in CONVERT_CASES.items():
            ours, ref = B.box_convert(boxes, in_fmt, out_fmt), tvops.box_convert(boxes, in_fmt, out_fmt)
            assert ours.dtype == ref.dtype and torch.equal(ours, ref)  # dtype too: ints stay ints
            if dtype != torch.int8:  # 35 + 95 overflows int8, in both libraries alike
                assert_close(ours, torch.tensor(expected, dtype=ours.dtype), check_dtype=False)
    # the same format is a copy, bit for bit (a round trip through xyxy would round)
    floats = random_boxes(30, gen, torch.float32 if not dtype.is_floating_point else dtype)
    for fmt in B.FORMATS:
        assert torch.equal(B.box_convert(floats, fmt, fmt), floats)
        assert B.box_convert(floats, fmt, fmt) is not floats


def test_upstream_box_convert_batched_empty_and_invalid(gen):
    batch = random_boxes(24, gen).reshape(2, 3, 4, 4)
    assert torch.equal(B.box_convert(batch, "xyxy", "cxcywh"), tvops.box_convert(batch, "xyxy", "cxcywh"))
    assert B.box_convert(torch.zeros(0, 5, 4), "xywh", "xyxy").shape == (0, 5, 4)  # an empty batch
    assert B.box_convert(torch.zeros(0, 4), "xyxy", "cxcywh").shape == (0, 4)
    for bad_in, bad_out in (("xwyh", "xwcx"), ("cxwyh", "xhwcy"), ("xyxy", "XYXY")):
        with pytest.raises(ValueError):
            tvops.box_convert(batch, bad_in, bad_out)
        with pytest.raises(ValueError, match="fmt"):
            B.box_convert(batch, bad_in, bad_out)
    # rotated formats exist in torchvision, not here: refused by name
    rotated = torch.tensor([[10.0, 10.0, 4.0, 2.0, 30.0]])
    assert tvops.box_convert(rotated, "cxcywhr", "xywhr").shape == (1, 5)
    with pytest.raises(ValueError, match="rotated"):
        B.box_convert(rotated, "cxcywhr", "xywhr")
    with pytest.raises(ValueError, match="degenerate"):  # a negative width
        B.box_convert(torch.tensor([[0.0, 0, -1, 2]]), "xywh", "xyxy")


@pytest.mark.parametrize("dtype", INTS + [torch.uint8])
def test_upstream_box_area_int_boxes(dtype):
    boxes = torch.tensor([[0, 0, 100, 100], [0, 0, 0, 0]], dtype=dtype)
    ours, ref = B.box_area(boxes), tvops.box_area(boxes)
    assert ours.dtype == ref.dtype == (torch.int64 if dtype == torch.int64 else torch.int32)
    assert ours.tolist() == ref.tolist() == [10000, 0]  # no int8 overflow: computed in int32


def test_uint8_overlaps_do_not_wrap():
    boxes = torch.tensor([[0, 0, 100, 100], [200, 200, 250, 250]], dtype=torch.uint8)
    assert tvops.box_iou(boxes, boxes)[0, 1] != 0  # torchvision: min(100, 250) - max(0, 200) wraps to 156
    assert_close(B.box_iou(boxes, boxes), torch.eye(2))  # disjoint boxes: IoU 0
    assert_close(B.box_iou(boxes, boxes), B.box_iou(boxes.long(), boxes.long()))


@pytest.mark.parametrize("dtype", FLOATS)
def test_upstream_box_area_float_boxes_and_formats(dtype):
    boxes = torch.tensor(FLOAT_BOXES, dtype=dtype)
    ours, ref = B.box_area(boxes), tvops.box_area(boxes)
    assert ours.dtype == ref.dtype and torch.equal(ours, ref)
    assert ours.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    if dtype in (torch.float32, torch.float64):  # half types round the corners themselves
        expected = torch.tensor([604723.0806, 600965.4666, 592761.0085], dtype=dtype)
        assert_close(ours, expected, atol=1e-4, rtol=0.0)
    # float16 areas of 600000 would overflow (max 65504): computed in float32 instead
    assert torch.isfinite(ours).all()
    small = torch.tensor([[2.825, 1.8625, 3.90, 4.85], [2.825, 4.875, 19.20, 5.10], [2.925, 1.80, 8.90, 4.90]],
                         dtype=torch.float16)
    assert_close(B.box_area(small), torch.tensor([3.2170, 3.7108, 18.5071]), atol=0.01, rtol=0.0)
    for fmt in ("xywh", "cxcywh"):
        converted = tvops.box_convert(boxes, "xyxy", fmt)
        assert torch.equal(B.box_area(converted, fmt=fmt), tvops.box_area(converted, fmt=fmt))
    assert B.box_area(torch.zeros(0, 4, dtype=dtype)).shape == (0,)
    assert B.box_area(torch.zeros(2, 0, 4, dtype=dtype)).shape == (2, 0)
    with pytest.raises(ValueError, match="fmt"):
        B.box_area(boxes, fmt="xywhr")


IOU_INT_EXPECTED = [[1.0, 0.25, 0.0], [0.25, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0625, 0.25, 0.0]]
GIOU_INT_EXPECTED = [[1.0, 0.25, -0.7778], [0.25, 1.0, -0.8611], [-0.7778, -0.8611, 1.0], [0.0625, 0.25, -0.8819]]
IOU_FLOAT_EXPECTED = [[1.0, 0.9933, 0.9673], [0.9933, 1.0, 0.9737], [0.9673, 0.9737, 1.0]]


@pytest.mark.parametrize("fn, int_expected",
                         [(B.box_iou, IOU_INT_EXPECTED), (B.generalized_box_iou, GIOU_INT_EXPECTED)])
def test_upstream_iou_and_giou_expected_values(fn, int_expected):
    twin = getattr(tvops, fn.__name__)
    for dtype in (torch.int16, torch.int32, torch.int64):
        a, b = torch.tensor(INT_BOXES, dtype=dtype), torch.tensor(INT_BOXES2, dtype=dtype)
        ours, ref = fn(a, b), twin(a, b)
        assert ours.dtype == ref.dtype == torch.get_default_dtype()  # integer boxes: float IoU
        assert torch.equal(ours, ref)
        assert_close(ours, torch.tensor(int_expected), atol=1e-4, rtol=0.0)
    for dtype, atol in ((torch.float16, 0.002), (torch.bfloat16, 0.02), (torch.float32, 1e-3), (torch.float64, 1e-3)):
        a = torch.tensor(FLOAT_BOXES, dtype=dtype)
        ours, ref = fn(a, a), twin(a, a)
        assert ours.dtype == ref.dtype  # float16/bfloat16: float32, as torchvision
        assert_close(ours, torch.tensor(IOU_FLOAT_EXPECTED), atol=atol, rtol=0.0, check_dtype=False)
        if dtype in (torch.float32, torch.float64):
            assert torch.equal(ours, ref)  # the same arithmetic, bit for bit
        else:  # torchvision rounds the overlap width to the input's precision first
            assert_close(ours, ref, atol=atol, rtol=0.0)


@pytest.mark.parametrize("fn", [B.box_iou, B.generalized_box_iou])
def test_upstream_iou_cartesian_batched_and_empty(gen, fn):
    twin = getattr(tvops, fn.__name__)
    a, b = random_boxes(5, gen), random_boxes(7, gen)
    pairwise = torch.stack([torch.cat([fn(a[i:i + 1], b[j:j + 1]) for j in range(7)], dim=1) for i in range(5)])
    assert_close(pairwise.reshape(5, 7), fn(a, b))
    batch1, batch2 = random_boxes(24, gen).reshape(2, 3, 4, 4), random_boxes(30, gen).reshape(2, 3, 5, 4)
    ours = fn(batch1, batch2)
    assert ours.shape == (2, 3, 4, 5) and torch.equal(ours, twin(batch1, batch2))
    assert_close(ours[1, 2], fn(batch1[1, 2], batch2[1, 2]))
    empty = fn(torch.zeros(0, 3, 4), torch.zeros(0, 5, 4))  # an empty batch
    assert empty.shape == twin(torch.zeros(0, 3, 4), torch.zeros(0, 5, 4)).shape == (0, 3, 5)
    assert fn(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0, 0)
    with pytest.raises(ValueError, match="boxes1"):
        fn(torch.zeros(4), torch.zeros(2, 4))  # no [N, 4] at all


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_iou_formats_match_torchvision(gen, fmt):
    a, b = random_boxes(20, gen, torch.float64), random_boxes(9, gen, torch.float64)
    a_, b_ = tvops.box_convert(a, "xyxy", fmt), tvops.box_convert(b, "xyxy", fmt)
    assert torch.equal(B.box_iou(a_, b_, fmt=fmt), tvops.box_iou(a_, b_, fmt=fmt))
    assert_close(B.box_iou(a_, b_, fmt=fmt), B.box_iou(a, b))
    with pytest.raises(ValueError, match="rotated"):
        B.box_iou(a_, b_, fmt="cxcywhr")


def test_iou_of_degenerate_and_zero_area_boxes():
    zero_w = torch.tensor([[1.0, 0.0, 1.0, 4.0]])  # zero width: allowed, IoU 0 with anything
    box = torch.tensor([[0.0, 0.0, 2.0, 4.0]])
    assert B.box_iou(zero_w, box).item() == tvops.box_iou(zero_w, box).item() == 0.0
    assert B.box_area(zero_w).item() == 0.0
    flipped = torch.tensor([[2.0, 0.0, 0.0, 4.0]])  # x2 < x1: torchvision gives a negative area
    assert tvops.box_area(flipped).item() < 0
    for fn in (B.box_area, lambda x: B.box_iou(x, box), lambda x: B.generalized_box_iou(x, box)):
        with pytest.raises(ValueError, match="degenerate"):
            fn(flipped)
    with pytest.raises(ValueError, match="row 1, 0"):  # the batch position of the bad box
        B.box_area(torch.stack([box, flipped]))


def _reference_nms(boxes, scores, iou_threshold):
    """torchvision's own test reference: a plain greedy loop (its TestNMS._reference_nms)."""
    picked = []
    indexes = scores.sort(descending=True, stable=True).indices
    while len(indexes) > 0:
        current = indexes[0]
        picked.append(current.item())
        iou = tvops.box_iou(boxes[indexes[1:]], boxes[current][None]).squeeze(1)
        indexes = indexes[1:][iou <= iou_threshold]
    return torch.as_tensor(picked, dtype=torch.long)


def _tensors_with_iou(n, iou_thresh, gen):
    """Upstream's _create_tensors_with_iou: the last box has IoU just above the threshold with the first."""
    boxes = torch.rand(n, 4, generator=gen) * 100
    boxes[:, 2:] += boxes[:, :2]
    boxes[-1, :] = boxes[0, :]
    x0, _, x1, _ = boxes[-1].tolist()
    iou_thresh += 1e-5
    boxes[-1, 2] += (x1 - x0) * (1 - iou_thresh) / iou_thresh
    return boxes, torch.rand(n, generator=gen)


@pytest.mark.parametrize("iou", (0.2, 0.5, 0.8))
@pytest.mark.parametrize("seed", range(3))
def test_upstream_nms_ref(iou, seed):
    boxes, scores = _tensors_with_iou(1000, iou, torch.Generator().manual_seed(seed))
    keep = B.nms(boxes, scores, iou)
    assert torch.equal(keep, _reference_nms(boxes, scores, iou))
    assert torch.equal(keep, tvops.nms(boxes, scores, iou))


def test_upstream_nms_input_errors():
    for boxes, scores in ((torch.rand(4), torch.rand(3)), (torch.rand(3, 5), torch.rand(3)),
                          (torch.rand(3, 4), torch.rand(3, 2)), (torch.rand(3, 4), torch.rand(4))):
        with pytest.raises(RuntimeError):
            tvops.nms(boxes, scores, 0.5)
        with pytest.raises(ValueError, match="boxes|scores"):
            B.nms(boxes, scores, 0.5)
    # dtypes torchvision refuses are refused here, with a TypeError naming the argument
    valid = torch.tensor([[0.0, 0, 2, 2], [1, 1, 3, 3], [0, 1, 2, 4]])
    for boxes, scores, name in ((valid.long(), torch.rand(3), "boxes"),
                                (valid, torch.rand(3).double(), "scores"),
                                (valid, torch.arange(3), "scores"),
                                (valid.tolist(), torch.rand(3), "boxes"),
                                (valid, torch.rand(3).tolist(), "scores")):
        if isinstance(boxes, torch.Tensor) and isinstance(scores, torch.Tensor):
            with pytest.raises(RuntimeError):
                tvops.nms(boxes, scores, 0.5)
        with pytest.raises(TypeError, match=name):
            B.nms(boxes, scores, 0.5)
    with pytest.raises(TypeError, match="iou_threshold"):
        B.nms(torch.zeros(2, 4), torch.zeros(2), torch.tensor(0.5))


def test_nms_threshold_outside_0_1_is_refused():
    boxes = torch.tensor([[0.0, 0, 1, 1], [5, 5, 6, 6]])  # two boxes far apart
    scores = torch.tensor([0.9, 0.8])
    # torchvision: below 0 even disjoint boxes suppress each other; above 1 or NaN nothing does
    assert tvops.nms(boxes, scores, -0.5).tolist() == [0]
    assert tvops.nms(boxes, scores, float("nan")).tolist() == [0, 1]
    for t in (-0.5, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="iou_threshold"):
            B.nms(boxes, scores, t)
        with pytest.raises(ValueError, match="iou_threshold"):
            B.batched_nms(boxes, scores, torch.tensor([0, 1]), t)


def test_nms_float32_iou_at_the_threshold_as_torchvision():
    # the float32 IoU of this pair is float32(1/3) = 0.33333334 > 1/3: torchvision compares it with
    # the threshold in float64 and suppresses; comparing in float32 (1/3 -> 0.33333334) would keep it
    pair = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]])
    scores = torch.tensor([0.9, 0.8])
    assert B.nms(pair, scores, 1 / 3).tolist() == tvops.nms(pair, scores, 1 / 3).tolist() == [0]
    assert B.nms(pair.double(), scores.double(), 1 / 3).tolist() == [0, 1]  # exactly 1/3: survives
    assert B.nms(pair, scores, 0.33333337).tolist() == tvops.nms(pair, scores, 0.33333337).tolist() == [0, 1]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_upstream_nms_half_precision(gen, dtype):
    boxes, scores = torch.tensor(FLOAT_BOXES), torch.tensor([0.6370, 0.7569, 0.3966])
    with pytest.raises(RuntimeError):  # torchvision's CPU kernel has no half types
        tvops.nms(boxes.to(dtype), scores.to(dtype), 0.2)
    # upstream's test_nms_float16 (CUDA there): half gives the float32 result; areas of ~600000
    # overflow float16, which made every IoU 0 and suppressed nothing
    assert torch.equal(B.nms(boxes.to(dtype), scores.to(dtype), 0.2), tvops.nms(boxes, scores, 0.2))
    assert B.nms(boxes.to(dtype), scores.to(dtype), 0.2).tolist() == [1]
    big, s = random_boxes(700, gen, extent=600), torch.rand(700, generator=gen)
    for t in (0.3, 0.5, 0.7):
        half_b, half_s = big.to(dtype), s.to(dtype)  # rounding makes many tied scores
        assert torch.equal(B.nms(half_b, half_s, t), tvops.nms(half_b.float(), half_s.float(), t))
        idxs = torch.randint(0, 3, (700,), generator=gen)
        assert torch.equal(B.batched_nms(half_b, half_s, idxs, t),
                           tvops.batched_nms(half_b.float(), half_s.float(), idxs, t))


def test_nms_across_blocks_long_chains_and_ties():
    n = 3 * B.NMS_BLOCK + 17  # several blocks and a ragged last one
    # a chain: each box overlaps the next at IoU 0.6 and the one after at 0.25; greedy keeps
    # every other box, which needs many rounds of the fixed point inside each block
    x = torch.arange(n, dtype=torch.float64) * 2.5
    zeros = torch.zeros(n, dtype=torch.float64)
    chain = torch.stack([x, zeros, x + 10, zeros + 10], dim=1)
    for scores in (torch.linspace(1, 0, n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)):
        keep = B.nms(chain, scores, 0.5)
        assert torch.equal(keep, tvops.nms(chain, scores, 0.5))
        assert keep.tolist() == list(range(0, n, 2))
    reverse = torch.linspace(0, 1, n, dtype=torch.float64)  # the chain from the other end
    assert torch.equal(B.nms(chain, reverse, 0.5), tvops.nms(chain, reverse, 0.5))
    gen = torch.Generator().manual_seed(7)
    boxes = random_boxes(n, gen, extent=300)
    tied = torch.randint(0, 3, (n,), generator=gen).float()
    for t in (0.0, 0.1, 0.5, 0.95, 1.0):
        assert torch.equal(B.nms(boxes, tied, t), tvops.nms(boxes, tied, t))
        assert torch.equal(B.nms(boxes, tied, t), _reference_nms(boxes, tied, t))


def test_nms_zero_area_boxes_and_one_box():
    points = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 2, 2]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert B.nms(points, scores, 0.0).tolist() == tvops.nms(points, scores, 0.0).tolist() == [0, 1, 2]
    one = B.nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([0.5]), 0.5)
    assert one.tolist() == [0] and one.dtype == torch.int64
    with pytest.raises(ValueError, match="degenerate"):  # torchvision: negative area, any result
        B.nms(torch.tensor([[2.0, 0, 0, 2]]), torch.tensor([1.0]), 0.5)


@pytest.mark.parametrize("seed", range(3))
def test_upstream_batched_nms_implementations(seed):
    """Upstream: torchvision's per-class loop and its coordinate trick agree; cvlib agrees with both."""
    gen = torch.Generator().manual_seed(seed)
    boxes = torch.cat((torch.rand(1000, 2, generator=gen), torch.rand(1000, 2, generator=gen) + 10), dim=1)
    scores = torch.rand(1000, generator=gen)
    idxs = torch.randint(0, 4, (1000,), generator=gen)
    vanilla = tvops.boxes._batched_nms_vanilla(boxes, scores, idxs, 0.9)
    trick = tvops.boxes._batched_nms_coordinate_trick(boxes, scores, idxs, 0.9)
    ours = B.batched_nms(boxes, scores, idxs, 0.9)
    assert torch.equal(ours, vanilla) and torch.equal(ours, trick)
    # batched_nms is nms per category, merged by score
    per_class = torch.cat([torch.nonzero(idxs == c).squeeze(1)[B.nms(boxes[idxs == c], scores[idxs == c], 0.9)]
                           for c in range(4)])
    assert torch.equal(ours, per_class[scores[per_class].sort(descending=True, stable=True).indices])


def test_batched_nms_above_1000_boxes_ties_and_empty_inputs():
    gen = torch.Generator().manual_seed(11)
    boxes, idxs = random_boxes(1500, gen, extent=200), torch.randint(0, 5, (1500,), generator=gen)
    free, tied = torch.rand(1500, generator=gen), torch.randint(0, 4, (1500,), generator=gen).float()
    assert torch.equal(B.batched_nms(boxes, free, idxs, 0.5), tvops.batched_nms(boxes, free, idxs, 0.5))
    ours, ref = B.batched_nms(boxes, tied, idxs, 0.5), tvops.batched_nms(boxes, tied, idxs, 0.5)
    assert sorted(ours.tolist()) == sorted(ref.tolist())  # the same boxes ...
    assert torch.equal(tied[ours], tied[ref])  # ... by decreasing score; ties in index order here
    for c in range(4):
        assert ours[tied[ours] == c].tolist() == sorted(ours[tied[ours] == c].tolist())
    # empty inputs: torchvision returns an empty result for empty boxes whatever the rest (upstream
    # passes None); here the other arguments are checked too
    empty = torch.empty((0,), dtype=torch.int64)
    assert torch.equal(tvops.batched_nms(empty, None, None, None), empty)
    with pytest.raises(TypeError, match="boxes"):
        B.batched_nms(empty, None, None, None)
    with pytest.raises(ValueError, match="boxes"):
        B.batched_nms(torch.zeros(0), None, None, None)
    with pytest.raises(TypeError, match="scores"):
        B.batched_nms(torch.zeros(0, 4), None, None, None)
    kept = B.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert kept.dtype == torch.int64 and kept.shape == (0,)
    with pytest.raises(ValueError, match="idxs"):
        B.batched_nms(torch.zeros(2, 4), torch.zeros(2), torch.zeros(3, dtype=torch.long), 0.5)


def test_nms_reads_the_host_per_block_not_per_box(monkeypatch):
    """bench/kernels.py's case (2000 boxes, IoU 0.5): the same indices as torchvision, with a few
    host reads (nonzero, torch.equal) per block of NMS_BLOCK boxes instead of one per box."""
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(2000, 2, generator=gen) * 500
    boxes = torch.cat([xy, xy + torch.rand(2000, 2, generator=gen) * 90 + 10], dim=1)
    scores = torch.rand(2000, generator=gen)
    calls = {"equal": 0, "nonzero": 0}
    equal, nonzero = torch.equal, torch.Tensor.nonzero

    def counting(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped
    monkeypatch.setattr(torch, "equal", counting("equal", equal))
    monkeypatch.setattr(torch.Tensor, "nonzero", counting("nonzero", nonzero))
    keep = B.nms(boxes, scores, 0.5)
    monkeypatch.undo()
    assert torch.equal(keep, tvops.nms(boxes, scores, 0.5)) and len(keep) > 1000
    blocks = -(-2000 // B.NMS_BLOCK)
    assert calls["nonzero"] == blocks
    assert blocks <= calls["equal"] <= 10 * blocks  # a few fixed-point rounds per block, not 2000 reads


def test_non_contiguous_inputs(gen):
    boxes = random_boxes(300, gen)
    column_major = boxes.t().contiguous().t()  # same values, other strides
    strided_scores = torch.rand(600, generator=gen)[::2]
    assert not column_major.is_contiguous() and not strided_scores.is_contiguous()
    assert torch.equal(B.nms(column_major, strided_scores, 0.5), tvops.nms(boxes, strided_scores.contiguous(), 0.5))
    assert torch.equal(B.box_iou(column_major, column_major[::3]), tvops.box_iou(boxes, boxes[::3]))
    assert torch.equal(B.box_convert(column_major, "xyxy", "cxcywh"), tvops.box_convert(boxes, "xyxy", "cxcywh"))
