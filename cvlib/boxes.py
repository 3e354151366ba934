"""Boxes, IoU, non-maximum suppression and anchors (chapter 10).

Conventions (the same as ``torchvision.ops``):

* A box is a row of 4 numbers. ``"xyxy"`` is ``(x1, y1, x2, y2)``, corners in continuous pixel
  coordinates: the image's top-left corner is ``(0, 0)``, pixel ``(i, j)`` covers
  ``[j, j+1) x [i, i+1)``, so a box covering pixels 0..9 is ``(0, 0, 10, 10)`` with width 10.
  ``"xywh"`` is ``(x1, y1, w, h)``, ``"cxcywh"`` is ``(cx, cy, w, h)``.
* ``box_convert``, ``box_area``, ``box_iou`` and ``generalized_box_iou`` take boxes ``[..., N, 4]``
  (any leading batch dimensions, empty ones too) of any floating or integer dtype, as torchvision
  does, with its result dtypes: areas and overlaps of float16/bfloat16 boxes in float32, of small
  integer types in int32 (so ``100 * 100`` cannot overflow), IoUs of integer boxes in torch's
  default dtype. The boxes are upcast *before* any arithmetic; torchvision subtracts the corners
  in the input dtype first, so its float16/bfloat16 IoUs carry one more rounding (they agree to
  that rounding) and its uint8 overlaps wrap around (``100 - 200 = 156``).
* Dtypes in ``nms``/``batched_nms``: boxes and scores floating and of one dtype (as torchvision);
  float16/bfloat16 boxes are compared in float32, so the kept indices are those of
  ``torchvision.ops.nms(boxes.float(), scores.float(), t)`` (its CPU kernel refuses half types).

Deliberate differences from torchvision (teaching simplifications, each refused with a clear error
or documented at the function, and tested in ``tests/test_boxes.py``):

* A box with ``x2 < x1`` or ``y2 < y1`` (negative ``w``/``h``) is *degenerate*: every function here
  raises ``ValueError`` for one (torchvision silently returns negative areas and IoUs outside
  [0, 1]); zero-width boxes are allowed. Two zero-area boxes have an empty union: their IoU is
  defined here as 0 (torchvision: NaN), and so is the GIoU penalty of an empty enclosing box.
* Only the axis-aligned formats; the rotated ones (``"xywhr"``, ``"cxcywhr"``, ``"xyxyxyxy"``) raise
  ``ValueError``.
* ``nms``/``batched_nms`` need ``0 <= iou_threshold <= 1`` (torchvision takes any float: below 0 it
  drops every lower-scoring box, above 1 or NaN none). ``batched_nms`` needs integer category
  ``idxs`` (torchvision also takes floats) and valid arguments even for zero boxes (torchvision
  returns an empty result for empty boxes without looking at the rest, even ``None``).

Pascal VOC annotates *pixel indices*, 1-based and inclusive: ``xmin=1, xmax=10`` is the first
ten pixels. In continuous 0-based xyxy that is ``(0, ., 10, .)``: subtract 1 from the minimum
(1-based -> 0-based index) and nothing from the maximum (the box ends at the far edge of the
last pixel: 0-based index ``xmax-1`` plus one pixel width). See ``voc_to_xyxy``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import floating_tensor, index_tensor, tensor

__all__ = [
    "box_convert", "voc_to_xyxy", "xyxy_to_voc", "box_area", "box_iou", "generalized_box_iou",
    "nms", "batched_nms", "grid_anchors", "assign_anchors", "BELOW_LOW", "BETWEEN",
]

FORMATS = ("xyxy", "xywh", "cxcywh")
ROTATED_FORMATS = ("xywhr", "cxcywhr", "xyxyxyxy")  # torchvision's; not implemented here
BELOW_LOW = -1  # anchor label: background (IoU < low with every ground truth)
BETWEEN = -2  # anchor label: ignored (low <= best IoU < high, and not forced)
NMS_BLOCK = 128  # boxes per step of nms: memory O(N * NMS_BLOCK), a few host reads per block


def _check_format(fmt: str, name: str) -> None:
    if fmt in ROTATED_FORMATS:
        raise ValueError(f"{name}={fmt!r}: rotated boxes are not implemented in cvlib "
                         f"(torchvision.ops has them); use one of {FORMATS}")
    if fmt not in FORMATS:
        raise ValueError(f"{name} must be one of {FORMATS}, got {fmt!r}")


def _check_boxes(boxes: Tensor, name: str, *, fmt: str = "xyxy", batched: bool = True,
                 floating: bool = False) -> None:
    """Type, shape ``[..., N, 4]`` (``[N, 4]`` unless ``batched``) and order (no negative w/h)."""
    floating_tensor(boxes, name) if floating else tensor(boxes, name)
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must have a floating or integer dtype, got {boxes.dtype}")
    if boxes.ndim < 2 or boxes.shape[-1] != 4 or (not batched and boxes.ndim != 2):
        want = "[..., N, 4]" if batched else "[N, 4]"
        raise ValueError(f"{name} must have shape {want}, got {tuple(boxes.shape)}")
    if fmt == "xyxy":
        bad, rule = (boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1]), "x2 < x1 or y2 < y1"
    else:  # xywh, cxcywh: the width and height
        bad, rule = (boxes[..., 2] < 0) | (boxes[..., 3] < 0), "w < 0 or h < 0"
    if bad.any():
        where = bad.nonzero()[0].tolist()
        raise ValueError(f"{name} holds a degenerate box ({rule}) at row "
                         f"{', '.join(map(str, where))}: {boxes[tuple(where)].tolist()}")


def _upcast(t: Tensor) -> Tensor:
    """float16/bfloat16 -> float32, int8/int16/uint8 -> int32 (torchvision's ``_upcast``): products
    of coordinates (areas) overflow in the small types (float16 ends at 65504)."""
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def _divide(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den > 0``, else 0 (no 0/0 = NaN, in the value or its gradient)."""
    tiny = torch.finfo(den.dtype).tiny if den.is_floating_point() else 1
    return torch.where(den > 0, num / den.clamp(min=tiny), 0.0)


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``boxes`` [..., N, 4] between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"``; same shape.

    The same arithmetic as ``torchvision.ops.box_convert`` (identical results, integer input
    included: it stays integer unless a centre is involved, which halves). ``in_fmt == out_fmt``
    returns a copy.
    """
    _check_format(in_fmt, "in_fmt")
    _check_format(out_fmt, "out_fmt")
    _check_boxes(boxes, "boxes", fmt=in_fmt)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(dim=-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    # now (a, b, c, d) is xyxy
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)


def voc_to_xyxy(boxes: Tensor) -> Tensor:
    """Pascal VOC ``(xmin, ymin, xmax, ymax)``, 1-based inclusive pixel indices -> continuous xyxy.

    ``(1, 1, 10, 10)`` (the top-left 10x10 pixels) becomes ``(0, 0, 10, 10)``: minus one on the
    minimum corner, unchanged maximum corner. Accepts integer or floating [..., N, 4]; returns the
    input's floating dtype, or torch's default dtype for integer input.
    """
    tensor(boxes, "boxes")
    boxes = boxes if boxes.is_floating_point() else boxes.to(torch.get_default_dtype())
    _check_boxes(boxes, "boxes")
    if (boxes[..., :2] < 1).any():
        raise ValueError("boxes: VOC pixel indices start at 1, got a minimum below 1")
    return boxes - boxes.new_tensor([1.0, 1.0, 0.0, 0.0])


def xyxy_to_voc(boxes: Tensor) -> Tensor:
    """Inverse of ``voc_to_xyxy``: continuous xyxy [..., N, 4] -> VOC 1-based inclusive indices (float)."""
    _check_boxes(boxes, "boxes", floating=True)
    return boxes + boxes.new_tensor([1.0, 1.0, 0.0, 0.0])


def _area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    boxes = _upcast(boxes)
    if fmt == "xyxy":
        return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return boxes[..., 2] * boxes[..., 3]  # xywh, cxcywh: w * h


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    """Areas [..., N] of ``boxes`` [..., N, 4] in ``fmt``; float16/bfloat16 -> float32, small ints -> int32."""
    _check_format(fmt, "fmt")
    _check_boxes(boxes, "boxes", fmt=fmt)
    return _area(boxes, fmt)


def _corners(boxes: Tensor) -> tuple[Tensor, ...]:
    """xyxy [..., N, 4] -> four contiguous [..., N] tensors (broadcasting strided columns is ~3x slower)."""
    return tuple(boxes.movedim(-1, 0).contiguous())


def _inter_union(boxes1: Tensor, area1: Tensor, boxes2: Tensor, area2: Tensor) -> tuple[Tensor, Tensor]:
    """Intersection and union areas [..., N, M] of xyxy boxes [..., N, 4] and [..., M, 4]."""
    x1, y1, x2, y2 = (c[..., :, None] for c in _corners(_upcast(boxes1)))  # [..., N, 1] each
    u1, v1, u2, v2 = (c[..., None, :] for c in _corners(_upcast(boxes2)))  # [..., 1, M] each
    w = (torch.minimum(x2, u2) - torch.maximum(x1, u1)).clamp(min=0)  # [..., N, M], overlap width
    h = (torch.minimum(y2, v2) - torch.maximum(y1, v1)).clamp(min=0)  # [..., N, M], overlap height
    inter = w * h  # [..., N, M]
    union = area1[..., :, None] + area2[..., None, :] - inter  # [..., N, M]
    return inter, union


def _checked_xyxy(boxes1: Tensor, boxes2: Tensor, fmt: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    _check_format(fmt, "fmt")
    _check_boxes(boxes1, "boxes1", fmt=fmt)
    _check_boxes(boxes2, "boxes2", fmt=fmt)
    if boxes1.dtype != boxes2.dtype:
        raise TypeError(f"boxes1 and boxes2 must share a dtype, got {boxes1.dtype} and {boxes2.dtype}")
    area1, area2 = _area(boxes1, fmt), _area(boxes2, fmt)  # [..., N], [..., M]
    if fmt != "xyxy":
        boxes1, boxes2 = box_convert(boxes1, fmt, "xyxy"), box_convert(boxes2, fmt, "xyxy")
    return boxes1, area1, boxes2, area2


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """IoU matrix [..., N, M] of ``boxes1`` [..., N, 4] and ``boxes2`` [..., M, 4]: |A ∩ B| / |A ∪ B|.

    ``fmt`` is the boxes' format (``"xyxy"``, ``"xywh"``, ``"cxcywh"``). The same arithmetic and
    result dtype as ``torchvision.ops.box_iou`` (bit-identical), except where the union is empty
    (0 here, NaN there).
    """
    boxes1, area1, boxes2, area2 = _checked_xyxy(boxes1, boxes2, fmt)
    inter, union = _inter_union(boxes1, area1, boxes2, area2)
    return _divide(inter, union)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """GIoU [..., N, M] (Rezatofighi et al. 2019): IoU - |C \\ (A ∪ B)| / |C|, C the smallest
    enclosing box, of xyxy ``boxes1`` [..., N, 4] and ``boxes2`` [..., M, 4].

    In [-1, 1]; unlike IoU it still ranks boxes that do not overlap (farther apart = lower).
    """
    boxes1, area1, boxes2, area2 = _checked_xyxy(boxes1, boxes2, "xyxy")
    inter, union = _inter_union(boxes1, area1, boxes2, area2)
    x1, y1, x2, y2 = (c[..., :, None] for c in _corners(_upcast(boxes1)))  # [..., N, 1] each
    u1, v1, u2, v2 = (c[..., None, :] for c in _corners(_upcast(boxes2)))  # [..., 1, M] each
    hull_w = torch.maximum(x2, u2) - torch.minimum(x1, u1)  # [..., N, M]
    hull_h = torch.maximum(y2, v2) - torch.minimum(y1, v1)  # [..., N, M]
    hull = hull_w * hull_h  # [..., N, M], area of C
    return _divide(inter, union) - _divide(hull - union, hull)


def _check_nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> None:
    _check_boxes(boxes, "boxes", batched=False, floating=True)
    floating_tensor(scores, "scores")
    if scores.dtype != boxes.dtype:
        raise TypeError(f"scores must have the boxes' dtype {boxes.dtype}, got {scores.dtype}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must have shape [{boxes.shape[0]}], got {tuple(scores.shape)}")
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)):
        raise TypeError(f"iou_threshold must be a float, got {type(iou_threshold).__name__}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")


def _threshold(iou_threshold: float, dtype: torch.dtype) -> Tensor:
    """The largest ``dtype`` number <= ``iou_threshold``. For an IoU ``x`` in that dtype, ``x > it``
    exactly when ``float64(x) > iou_threshold``, the test torchvision's C++ kernel makes (comparing
    with the threshold rounded to float32 would keep a float32 IoU of 1/3 at threshold 1/3)."""
    exact = torch.tensor(iou_threshold, dtype=torch.float64)
    rounded = exact.to(dtype)
    if rounded > exact:  # rounded up: step down to the float below
        rounded = torch.nextafter(rounded, rounded.new_tensor(-math.inf))
    return rounded


def _greedy_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None) -> Tensor:
    """Greedy NMS, ``idxs`` [N] optional categories (boxes of different ones never suppress)."""
    order = torch.sort(scores, descending=True, stable=True).indices  # [N], best first
    boxes = _upcast(boxes[order])  # [N, 4] in score order, float16/bfloat16 as float32
    area = _area(boxes)  # [N]
    cats = None if idxs is None else idxs[order]  # [N]
    threshold = _threshold(iou_threshold, boxes.dtype)

    x1, y1, x2, y2 = _corners(boxes)  # [N] each

    def suppresses(rows: Tensor, cols: slice) -> Tensor:
        """[R, C] bool: box ``rows[r]`` suppresses box ``cols[c]`` if it is kept (IoU > threshold).

        ``_inter_union``'s arithmetic, in place (these matrices are the whole cost of nms)."""
        w = torch.minimum(x2[rows, None], x2[None, cols]).sub_(torch.maximum(x1[rows, None], x1[None, cols]))
        h = torch.minimum(y2[rows, None], y2[None, cols]).sub_(torch.maximum(y1[rows, None], y1[None, cols]))
        inter = w.clamp_(min=0).mul_(h.clamp_(min=0))  # [R, C]
        union = (area[rows, None] + area[None, cols]).sub_(inter)  # [R, C]
        over = inter.div_(union) > threshold  # 0/0 (two empty boxes) is NaN: not over
        return over if cats is None else over.logical_and_(cats[rows, None] == cats[None, cols])

    keep = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    for start in range(0, len(order), NMS_BLOCK):
        block = slice(start, min(start + NMS_BLOCK, len(order)))
        # 1. every box kept so far outranks the whole block: drop what any of them suppresses
        kept = keep[:start].nonzero().squeeze(1)  # [K]
        alive = ~suppresses(kept, block).any(dim=0)  # [B]
        # 2. inside the block, greedy NMS is the fixed point of  keep_j = alive_j and no kept i < j
        # suppresses j  ("Cluster-NMS", Zheng et al. 2020). The strict upper triangle keeps i < j;
        # after t rounds the first t entries are final, so it stops within B rounds, and a fixed
        # point is unique (entry j is decided by entries < j): it is exactly the greedy result.
        over = suppresses(torch.arange(block.start, block.stop, device=boxes.device), block).triu(1)
        block_keep = alive
        while True:
            new = alive & ~(over & block_keep[:, None]).any(dim=0)  # [B]
            if torch.equal(new, block_keep):
                break
            block_keep = new
        keep[block] = block_keep
    return order[keep]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression; returns int64 indices [K] of kept boxes, by decreasing score.

    boxes [N, 4] xyxy and scores [N], floating, one dtype. Repeatedly keep the highest-scoring
    remaining box and drop every remaining box whose IoU with it is *strictly greater* than
    ``iou_threshold`` in [0, 1] (IoU exactly at the threshold survives). Equal scores keep their
    input order (a stable sort). The same indices, in the same order, as ``torchvision.ops.nms``.

    Computed in blocks of ``NMS_BLOCK`` boxes in score order, without a Python step per box: the
    boxes kept before a block suppress inside it all at once (one [K, B] IoU matrix), and inside
    the block a fixed-point iteration on its [B, B] IoU matrix gives the greedy result. Time
    O(N * K) for K kept, memory O(N * NMS_BLOCK).
    """
    _check_nms(boxes, scores, iou_threshold)
    return _greedy_nms(boxes, scores, iou_threshold, None)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category ``idxs`` [N] (integers) separately; kept indices by decreasing score.

    The same greedy pass as ``nms`` with the suppression test and-ed with "same category": exactly
    one ``nms`` per category, merged by score (what ``torchvision.ops.batched_nms`` computes; for
    up to 1000 boxes on the CPU it shifts each category's boxes apart and runs one ``nms``, its
    "coordinate trick", which can round an IoU at the threshold differently). Equal scores keep
    their input order; above 1000 boxes torchvision orders its result with an unstable sort, so
    tied boxes may come in another order there (the same boxes, the same scores in sequence).
    """
    _check_nms(boxes, scores, iou_threshold)
    index_tensor(idxs, "idxs")
    if idxs.shape != boxes.shape[:1]:
        raise ValueError(f"idxs must have shape [{boxes.shape[0]}], got {tuple(idxs.shape)}")
    return _greedy_nms(boxes, scores, iou_threshold, idxs.to(boxes.device))


def grid_anchors(feature_size: tuple[int, int], stride: tuple[int, int] | int, sizes: tuple[float, ...],
                 aspect_ratios: tuple[float, ...], *, offset: float = 0.0,
                 dtype: torch.dtype | None = None) -> Tensor:
    """Anchors [H*W*A, 4] (xyxy) over an ``feature_size=(H, W)`` map, ``A = len(ratios)*len(sizes)``.

    Anchor centres sit at ``((j + offset) * stride_x, (i + offset) * stride_y)``; ``offset=0`` is
    torchvision's ``AnchorGenerator`` (centres on the top-left corner of each cell), ``0.5`` is
    the cell centre (SSD). Each size ``s`` and aspect ratio ``r = h / w`` gives a box of area
    ``s**2``: ``w = s / sqrt(r)``, ``h = s * sqrt(r)``. Order: location-major, then ratio, then
    size, as torchvision. (torchvision also rounds each half-width to an integer; this does not.)
    Computed in float64, returned in ``dtype`` (default: torch's default dtype).
    """
    if len(feature_size) != 2 or any(type(v) is not int or v < 1 for v in feature_size):
        raise ValueError(f"feature_size must be two positive ints (H, W), got {feature_size}")
    sy, sx = (stride, stride) if isinstance(stride, (int, float)) else stride
    if not min(sy, sx) > 0 or not math.isfinite(sy * sx):  # NaN fails too
        raise ValueError(f"stride must be positive, got {stride}")
    if not sizes or not aspect_ratios or not all(0 < v < math.inf for v in (*sizes, *aspect_ratios)):
        raise ValueError("sizes and aspect_ratios must be non-empty and positive")
    ratios = torch.tensor(aspect_ratios, dtype=torch.float64)
    scales = torch.tensor(sizes, dtype=torch.float64)
    ws = (scales[None, :] / ratios.sqrt()[:, None]).reshape(-1)  # [A], ratio-major
    hs = (scales[None, :] * ratios.sqrt()[:, None]).reshape(-1)  # [A]
    base = torch.stack((-ws, -hs, ws, hs), dim=1) / 2  # [A, 4], centred on (0, 0)
    ys = (torch.arange(feature_size[0], dtype=torch.float64) + offset) * sy  # [H]
    xs = (torch.arange(feature_size[1], dtype=torch.float64) + offset) * sx  # [W]
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")  # [H, W] each
    centres = torch.stack((cx, cy, cx, cy), dim=-1).reshape(-1, 1, 4)  # [H*W, 1, 4]
    dtype = torch.get_default_dtype() if dtype is None else dtype
    return (centres + base[None]).reshape(-1, 4).to(dtype)  # [H*W*A, 4]


def assign_anchors(anchors: Tensor, gt_boxes: Tensor, high: float = 0.7, low: float = 0.3,
                   force_best: bool = True) -> tuple[Tensor, Tensor]:
    """Label each anchor with a ground-truth index, ``BELOW_LOW`` (-1) or ``BETWEEN`` (-2).

    The Faster R-CNN RPN rule (Ren et al. 2015): an anchor whose best IoU with any ground truth
    is ``>= high`` is positive, matched to that ground truth (ties: the lowest index); ``< low``
    is background; in between it is ignored by the loss. With ``force_best``, for every ground
    truth the anchor(s) with the highest IoU with it (all of them if tied) become positive
    even below ``high``, each matched to *its own* best ground truth — exactly
    ``torchvision.models.detection._utils.Matcher(high, low, allow_low_quality_matches=True)``,
    except that a ground truth overlapping no anchor at all (best IoU 0) forces nothing here,
    and no ground truth at all means every anchor is background (Matcher raises).

    anchors [A, 4], gt_boxes [G, 4] xyxy. Returns ``(labels [A] int64, best_iou [A])``.
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
    _check_boxes(anchors, "anchors", batched=False, floating=True)
    _check_boxes(gt_boxes, "gt_boxes", batched=False, floating=True)
    if gt_boxes.shape[0] == 0 or anchors.shape[0] == 0:
        return (torch.full((anchors.shape[0],), BELOW_LOW, dtype=torch.long, device=anchors.device),
                anchors.new_zeros(anchors.shape[0]))
    iou = box_iou(gt_boxes, anchors)  # [G, A]
    best_iou, labels = iou.max(dim=0)  # [A] each: best ground truth per anchor
    matched = labels.clone()
    labels[best_iou < high] = BETWEEN
    labels[best_iou < low] = BELOW_LOW
    if force_best:
        best_per_gt = iou.max(dim=1, keepdim=True).values  # [G, 1]
        forced = ((iou == best_per_gt) & (best_per_gt > 0)).any(dim=0)  # [A]
        labels[forced] = matched[forced]
    return labels, best_iou
