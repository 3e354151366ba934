"""Boxes, IoU, non-maximum suppression and anchors (chapter 10).

Conventions (the same as ``torchvision.ops``):

* A box is a row of 4 floats. ``"xyxy"`` is ``(x1, y1, x2, y2)``, corners in continuous pixel
  coordinates: the image's top-left corner is ``(0, 0)``, pixel ``(i, j)`` covers
  ``[j, j+1) x [i, i+1)``, so a box covering pixels 0..9 is ``(0, 0, 10, 10)`` with width 10.
  ``"xywh"`` is ``(x1, y1, w, h)``, ``"cxcywh"`` is ``(cx, cy, w, h)``.
* A box with ``x2 < x1`` or ``y2 < y1`` is *degenerate*. ``box_area``, ``box_iou``,
  ``generalized_box_iou`` and ``assign_anchors`` raise ``ValueError`` for one (torchvision
  silently returns negative areas and IoUs outside [0, 1]); zero-width boxes are allowed.
  Two zero-area boxes have an empty union: their IoU is defined here as 0 (torchvision: NaN).
* Pascal VOC annotates *pixel indices*, 1-based and inclusive: ``xmin=1, xmax=10`` is the first
  ten pixels. In continuous 0-based xyxy that is ``(0, ., 10, .)``: subtract 1 from the minimum
  (1-based -> 0-based index) and nothing from the maximum (the box ends at the far edge of the
  last pixel: 0-based index ``xmax-1`` plus one pixel width). See ``voc_to_xyxy``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "box_convert", "voc_to_xyxy", "xyxy_to_voc", "box_area", "box_iou", "generalized_box_iou",
    "nms", "batched_nms", "grid_anchors", "assign_anchors", "BELOW_LOW", "BETWEEN",
]

FORMATS = ("xyxy", "xywh", "cxcywh")
BELOW_LOW = -1  # anchor label: background (IoU < low with every ground truth)
BETWEEN = -2  # anchor label: ignored (low <= best IoU < high, and not forced)


def _check_boxes(boxes: Tensor, name: str, *, check_order: bool = True) -> None:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if not boxes.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {boxes.dtype}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape [N, 4], got {tuple(boxes.shape)}")
    if check_order and ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
        bad = int(((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).nonzero()[0, 0])
        raise ValueError(f"{name} holds a degenerate box (x2 < x1 or y2 < y1) at row {bad}: "
                         f"{boxes[bad].tolist()}")


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``boxes`` [N, 4] between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"``; returns [N, 4]."""
    _check_boxes(boxes, "boxes", check_order=False)
    for arg, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in FORMATS:
            raise ValueError(f"{arg} must be one of {FORMATS}, got {fmt!r}")
    a, b, c, d = boxes.unbind(dim=1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    # now (a, b, c, d) is xyxy
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), dim=1)


def voc_to_xyxy(boxes: Tensor) -> Tensor:
    """Pascal VOC ``(xmin, ymin, xmax, ymax)``, 1-based inclusive pixel indices -> continuous xyxy.

    ``(1, 1, 10, 10)`` (the top-left 10x10 pixels) becomes ``(0, 0, 10, 10)``: minus one on the
    minimum corner, unchanged maximum corner. Accepts integer or floating [N, 4]; returns the
    input's floating dtype, or torch's default dtype for integer input.
    """
    if not isinstance(boxes, Tensor):
        raise TypeError(f"boxes must be a torch.Tensor, got {type(boxes).__name__}")
    boxes = boxes if boxes.is_floating_point() else boxes.to(torch.get_default_dtype())
    _check_boxes(boxes, "boxes")
    if (boxes[:, :2] < 1).any():
        raise ValueError("boxes: VOC pixel indices start at 1, got a minimum below 1")
    return boxes - boxes.new_tensor([1.0, 1.0, 0.0, 0.0])


def xyxy_to_voc(boxes: Tensor) -> Tensor:
    """Inverse of ``voc_to_xyxy``: continuous xyxy [N, 4] -> VOC 1-based inclusive indices (float)."""
    _check_boxes(boxes, "boxes")
    return boxes + boxes.new_tensor([1.0, 1.0, 0.0, 0.0])


def box_area(boxes: Tensor) -> Tensor:
    """Areas [N] of xyxy ``boxes`` [N, 4]."""
    _check_boxes(boxes, "boxes")
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    if boxes1.dtype != boxes2.dtype:
        raise TypeError(f"boxes1 and boxes2 must share a dtype, got {boxes1.dtype} and {boxes2.dtype}")
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # [N, M, 2]
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # [N, M, 2]
    wh = (rb - lt).clamp(min=0)  # [N, M, 2]
    inter = wh[..., 0] * wh[..., 1]  # [N, M]
    union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter  # [N, M]
    return inter, union


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU matrix [N, M] of xyxy ``boxes1`` [N, 4] and ``boxes2`` [M, 4]: |A ∩ B| / |A ∪ B|.

    Matches ``torchvision.ops.box_iou`` except where the union is empty (0 here, NaN there).
    """
    inter, union = _inter_union(boxes1, boxes2)
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """GIoU [N, M] (Rezatofighi et al. 2019): IoU - |C \\ (A ∪ B)| / |C|, C the smallest enclosing box.

    In [-1, 1]; unlike IoU it still ranks boxes that do not overlap (farther apart = lower).
    """
    inter, union = _inter_union(boxes1, boxes2)
    iou = torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)
    lt = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])  # [N, M, 2]
    rb = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])  # [N, M, 2]
    hull = (rb - lt).prod(dim=2)  # [N, M]
    penalty = torch.where(hull > 0, (hull - union) / hull.clamp(min=torch.finfo(hull.dtype).tiny), 0.0)
    return iou - penalty


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression; returns int64 indices [K] of kept boxes, by decreasing score.

    Repeatedly keep the highest-scoring remaining box and drop every remaining box whose IoU
    with it is *strictly greater* than ``iou_threshold`` (IoU exactly at the threshold survives,
    as in ``torchvision.ops.nms``). Equal scores keep their input order (a stable sort).
    """
    _check_boxes(boxes, "boxes")
    if not isinstance(scores, Tensor) or scores.shape != (boxes.shape[0],):
        raise ValueError(f"scores must be a Tensor of shape [{boxes.shape[0]}]")
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])  # [N, N], rows and columns in score order
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category ``idxs`` [N] separately; returns kept indices by decreasing score.

    Shifts each category's boxes by ``idxs * (max coordinate + 1)`` so boxes of different
    categories never overlap, then runs one ``nms`` (torchvision's "coordinate trick").
    """
    _check_boxes(boxes, "boxes")
    if not isinstance(idxs, Tensor) or idxs.shape != (boxes.shape[0],) or idxs.is_floating_point():
        raise ValueError(f"idxs must be an integer Tensor of shape [{boxes.shape[0]}]")
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    span = boxes.max() - boxes.min() + 1
    shifted = boxes + (idxs.to(boxes.dtype) * span)[:, None]  # [N, 4], categories far apart
    return nms(shifted, scores, iou_threshold)


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
    if min(sy, sx) <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    if not sizes or min(sizes) <= 0 or not aspect_ratios or min(aspect_ratios) <= 0:
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
    _check_boxes(anchors, "anchors")
    _check_boxes(gt_boxes, "gt_boxes")
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
