"""A toy one-stage and a toy two-stage detector on synthetic shapes (chapter 10).

Small enough to train on a CPU in seconds, built from ``cvlib.boxes``. The training loops call
``torchvision.ops.nms`` / ``batched_nms`` (C++), which ``tests/test_boxes.py`` shows give the same
indices as ``cvlib.boxes.nms`` / ``batched_nms``: as fast on thousands of boxes, but on the few dozen
per image here cvlib's fixed Python cost (~0.15 ms a call against ~0.02 ms) would add up. Box format everywhere:
continuous xyxy (see ``cvlib.boxes``). Classes: 0 = filled square, 1 = disc.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, nms, roi_align, sigmoid_focal_loss

from . import boxes as B
from ._checks import floating_tensor

__all__ = ["make_shapes", "encode_boxes", "decode_boxes", "OneStageDetector", "TwoStageDetector",
           "average_precision", "detection_scores", "train_detector"]

CLASSES = ("square", "disc")


def make_shapes(n: int, generator: torch.Generator, *, image_size: int = 32, max_objects: int = 3,
                min_size: int = 6, max_size: int = 14,
                dtype: torch.dtype | None = None) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """``n`` grey images [n, 1, S, S] with 1..max_objects non-overlapping squares and discs.

    Returns ``(images, boxes, labels)``: images and ``boxes[i]`` [K_i, 4] (xyxy, the exact extent
    of the object's pixels: pixel indices ``x1 .. x2-1``) in ``dtype`` (default: torch's default
    dtype, so a chapter's ``set_default_dtype(DTYPE)`` carries over), ``labels[i]`` [K_i] int64
    in {0, 1}. Background: uniform noise in [0, 0.3); objects have brightness in [0.6, 1).
    """
    if type(n) is not int:
        raise TypeError(f"n must be a positive int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not 1 <= min_size <= max_size <= image_size:
        raise ValueError(f"need 1 <= min_size <= max_size <= image_size, got {min_size}, {max_size}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    images = torch.rand(n, 1, image_size, image_size, generator=generator, dtype=dtype) * 0.3
    ii, jj = torch.meshgrid(torch.arange(image_size), torch.arange(image_size), indexing="ij")
    all_boxes, all_labels = [], []
    for img in images:
        count = int(torch.randint(1, max_objects + 1, (1,), generator=generator))
        boxes: list[list[float]] = []
        labels: list[int] = []
        for _ in range(20 * count):  # rejection sampling of non-overlapping boxes
            if len(boxes) == count:
                break
            s = int(torch.randint(min_size, max_size + 1, (1,), generator=generator))
            x, y = (int(v) for v in torch.randint(0, image_size - s + 1, (2,), generator=generator))
            box = torch.tensor([[x, y, x + s, y + s]], dtype=dtype)
            if boxes and (B.box_iou(box, torch.tensor(boxes, dtype=dtype)) > 0).any():
                continue
            label = int(torch.randint(0, 2, (1,), generator=generator))
            if label == 0:
                mask = (ii >= y) & (ii < y + s) & (jj >= x) & (jj < x + s)
            else:  # pixel centres inside the inscribed circle
                c, r = s / 2, s / 2
                mask = ((ii + 0.5 - y - c) ** 2 + (jj + 0.5 - x - c) ** 2) <= r * r
            img[0][mask] = 0.6 + 0.4 * float(torch.rand(1, generator=generator))
            rows, cols = mask.nonzero(as_tuple=True)
            boxes.append([float(cols.min()), float(rows.min()), float(cols.max()) + 1, float(rows.max()) + 1])
            labels.append(label)
        all_boxes.append(torch.tensor(boxes, dtype=dtype).reshape(-1, 4))
        all_labels.append(torch.tensor(labels, dtype=torch.long))
    return images, all_boxes, all_labels


def _check_pairs(name: str, x: Tensor, anchors: Tensor) -> None:
    """``x`` and ``anchors``: floating [N, 4] of one dtype, row i of one paired with row i of the
    other; anchors with positive width and height (a log or a division by each)."""
    floating_tensor(x, name)
    floating_tensor(anchors, "anchors")
    if x.ndim != 2 or x.shape[1] != 4 or x.shape != anchors.shape:
        raise ValueError(f"{name} and anchors must both have shape [N, 4] (row i with row i), "
                         f"got {tuple(x.shape)} and {tuple(anchors.shape)}")
    if x.dtype != anchors.dtype:
        raise TypeError(f"{name} and anchors must share a dtype, got {x.dtype} and {anchors.dtype}")
    if not ((anchors[:, 2] > anchors[:, 0]) & (anchors[:, 3] > anchors[:, 1])).all():
        raise ValueError("anchors must have positive width and height (torchvision's BoxCoder "
                         "returns inf or NaN for an empty anchor)")


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """xyxy [N, 4] -> centre x, centre y, width, height, [N] each. The centre as ``x1 + w / 2``, as
    torchvision's BoxCoder: ``(x1 + x2) / 2`` rounds the larger sum, which float16 feels."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w, h


def encode_boxes(gt: Tensor, anchors: Tensor) -> Tensor:
    """Regression targets [N, 4] (Ren et al. 2015): ``((gx-ax)/aw, (gy-ay)/ah, log(gw/aw), log(gh/ah))``.

    ``gt`` and ``anchors`` are [N, 4] xyxy, paired row by row (N may be 0), one floating dtype. The
    same arithmetic as torchvision's ``BoxCoder(weights=(1, 1, 1, 1)).encode_single`` (identical
    results in every dtype), which also broadcasts mismatched shapes and returns inf for an empty
    anchor: both are refused here.
    """
    _check_pairs("gt", gt, anchors)
    gx, gy, gw, gh = _centre_size(gt)  # [N] each
    ax, ay, aw, ah = _centre_size(anchors)  # [N] each
    return torch.stack([(gx - ax) / aw, (gy - ay) / ah, torch.log(gw / aw), torch.log(gh / ah)], dim=1)


def decode_boxes(deltas: Tensor, anchors: Tensor) -> Tensor:
    """Inverse of ``encode_boxes``: deltas [N, 4] applied to anchors [N, 4] -> boxes [N, 4] xyxy.

    The same arithmetic as ``BoxCoder(weights=(1, 1, 1, 1)).decode_single``, with its clamp of
    the log-size deltas at ``log(1000 / 16)``; shapes and dtypes are checked as in ``encode_boxes``.
    """
    _check_pairs("deltas", deltas, anchors)
    ax, ay, aw, ah = _centre_size(anchors)  # [N] each
    dx, dy, dw, dh = deltas.unbind(dim=1)  # [N] each
    clip = math.log(1000 / 16)  # torchvision's clamp: exp() of a wild prediction stays finite
    cx, cy = dx * aw + ax, dy * ah + ay
    w, h = torch.exp(dw.clamp(max=clip)) * aw, torch.exp(dh.clamp(max=clip)) * ah
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=1)


def _backbone(width: int) -> nn.Sequential:
    """[B, 1, S, S] -> [B, width, S/4, S/4]."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
    )


class _Anchored(nn.Module):
    """Shared by both detectors: a stride-4 backbone and anchors over its 8x8 (for 32 px) map."""

    stride = 4

    def __init__(self, width: int, image_size: int, sizes: tuple[float, ...]):
        super().__init__()
        self.features = _backbone(width)
        self.num_anchors, self.image_size = len(sizes), image_size
        grid = image_size // self.stride
        self.register_buffer("anchors", B.grid_anchors((grid, grid), self.stride, sizes, (1.0,), offset=0.5))

    def targets(self, boxes: list[Tensor], labels: list[Tensor], high: float, low: float) -> tuple[Tensor, Tensor]:
        """Anchor targets for a data set (they do not depend on the weights: compute them once).

        Returns ``classes [N, A]`` (the matched object's class, or ``BELOW_LOW`` / ``BETWEEN``)
        and regression targets ``[N, A, 4]`` (``encode_boxes``; meaningful where classes >= 0).
        """
        classes, regs = [], []
        for gt, cls in zip(boxes, labels):
            gt, cls = gt.to(self.anchors.device), cls.to(self.anchors.device)  # the anchors' device
            match, _ = B.assign_anchors(self.anchors, gt, high, low)  # [A]
            matched = gt[match.clamp(min=0)] if len(gt) else self.anchors
            classes.append(torch.where(match >= 0, cls[match.clamp(min=0)] if len(gt) else 0, match))
            regs.append(encode_boxes(matched, self.anchors))
        return torch.stack(classes), torch.stack(regs)


class OneStageDetector(_Anchored):
    """RetinaNet in miniature: every anchor is classified (sigmoid per class) and regressed.

    ``focal=True`` uses the focal loss (Lin et al. 2017, gamma=2, alpha=0.25) over all
    non-ignored anchors, ``False`` plain binary cross-entropy. Anchors: IoU >= 0.5 foreground,
    < 0.4 background, as RetinaNet.
    """

    def __init__(self, num_classes: int = 2, width: int = 32, image_size: int = 32,
                 sizes: tuple[float, ...] = (8.0, 12.0, 16.0), focal: bool = True):
        super().__init__(width, image_size, sizes)
        self.num_classes, self.focal = num_classes, focal
        self.head = nn.Conv2d(width, self.num_anchors * (num_classes + 4), 3, padding=1)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images [B, 1, S, S] -> class logits [B, A_total, C], box deltas [B, A_total, 4]."""
        out = self.head(self.features(images))  # [B, A*(C+4), H, W]
        out = out.permute(0, 2, 3, 1).reshape(len(images), -1, self.num_classes + 4)  # location-major
        return out[..., :self.num_classes], out[..., self.num_classes:]

    def loss(self, images: Tensor, classes: Tensor, regs: Tensor) -> Tensor:
        """Loss for a batch; ``classes`` [B, A], ``regs`` [B, A, 4] from ``targets(..., 0.5, 0.4)``."""
        logits, deltas = self(images)  # [B, A, C], [B, A, 4]
        pos, keep = classes >= 0, classes != B.BETWEEN  # [B, A] each
        target = F.one_hot(classes.clamp(min=0), self.num_classes).to(logits.dtype) * pos[..., None]
        if self.focal:
            cls_loss = sigmoid_focal_loss(logits[keep], target[keep], reduction="sum")
        else:
            cls_loss = F.binary_cross_entropy_with_logits(logits[keep], target[keep], reduction="sum")
        box_loss = F.smooth_l1_loss(deltas[pos], regs[pos], beta=1 / 9, reduction="sum")
        return (cls_loss + box_loss) / max(int(pos.sum()), 1)  # normalised by the foreground count

    @torch.no_grad()
    def detect(self, images: Tensor, score_threshold: float = 0.05,
               iou_threshold: float = 0.5) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per image ``(boxes [K, 4], scores [K], labels [K])`` after per-class NMS."""
        logits, deltas = self(images)
        results = []
        for lg, dl in zip(logits, deltas):
            scores = lg.sigmoid()  # [A, C]
            anchor_idx, cls = (scores > score_threshold).nonzero(as_tuple=True)
            boxes = decode_boxes(dl[anchor_idx], self.anchors[anchor_idx])
            s = scores[anchor_idx, cls]
            keep = batched_nms(boxes, s, cls, iou_threshold)[:20]
            results.append((boxes[keep], s[keep], cls[keep]))
        return results


class TwoStageDetector(_Anchored):
    """Faster R-CNN in miniature: an RPN proposes, RoIAlign crops, a second head classifies.

    Stage 1 (RPN): class-agnostic objectness + deltas per anchor, trained on 0.7 / 0.3 anchor
    labels with forced best matches, 64 anchors sampled per image with at most half positive.
    Stage 2: the top ``num_proposals`` proposals after NMS (plus, in training, the ground
    truths), labelled foreground at IoU >= 0.5, cropped to 4x4 features with RoIAlign, classified
    into background + C classes and refined.
    """

    def __init__(self, num_classes: int = 2, width: int = 32, image_size: int = 32,
                 sizes: tuple[float, ...] = (8.0, 12.0, 16.0), num_proposals: int = 16):
        super().__init__(width, image_size, sizes)
        self.num_classes, self.num_proposals = num_classes, num_proposals
        self.rpn = nn.Conv2d(width, self.num_anchors * 5, 3, padding=1)
        self.roi_head = nn.Sequential(nn.Flatten(), nn.Linear(width * 16, 128), nn.ReLU())
        self.cls = nn.Linear(128, num_classes + 1)  # index 0 = background
        self.reg = nn.Linear(128, 4)

    def _proposals(self, objectness: Tensor, deltas: Tensor) -> Tensor:
        boxes = decode_boxes(deltas.detach(), self.anchors)
        boxes = boxes.clamp(0, self.image_size)  # proposals stay inside the image
        wh_ok = (boxes[:, 2] > boxes[:, 0] + 1) & (boxes[:, 3] > boxes[:, 1] + 1)
        boxes, scores = boxes[wh_ok], objectness.detach()[wh_ok]
        return boxes[nms(boxes, scores, 0.7)[:self.num_proposals]]  # = B.nms, in C++

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """images -> feature map [B, width, H, W], objectness [B, A_total], RPN deltas [B, A_total, 4]."""
        feats = self.features(images)
        out = self.rpn(feats).permute(0, 2, 3, 1).reshape(len(images), -1, 5)
        return feats, out[..., 0], out[..., 1:]

    def _second_stage(self, feats: Tensor, rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        crops = roi_align(feats, rois, output_size=4, spatial_scale=1 / self.stride, sampling_ratio=2, aligned=True)
        hidden = self.roi_head(crops)
        return self.cls(hidden), self.reg(hidden)

    def loss(self, images: Tensor, classes: Tensor, regs: Tensor, boxes: list[Tensor], labels: list[Tensor],
             generator: torch.Generator) -> Tensor:
        """Loss for a batch; ``classes``, ``regs`` from ``targets(..., 0.7, 0.3)``; ``boxes``, ``labels`` per image."""
        feats, objectness, deltas = self(images)
        rpn_loss, rois, roi_labels, roi_targets = images.new_zeros(()), [], [], []
        for obj, dl, match, reg, gt, cls in zip(objectness, deltas, classes, regs, boxes, labels):
            pos = (match >= 0).nonzero()[:, 0]
            neg = (match == B.BELOW_LOW).nonzero()[:, 0]
            pos = pos[torch.randperm(len(pos), generator=generator)[:32]]
            neg = neg[torch.randperm(len(neg), generator=generator)[:64 - len(pos)]]  # sampled, not all
            idx = torch.cat([pos, neg])
            rpn_loss = rpn_loss + F.binary_cross_entropy_with_logits(obj[idx], (match[idx] >= 0).to(obj.dtype))
            rpn_loss = rpn_loss + F.smooth_l1_loss(dl[pos], reg[pos], beta=1 / 9, reduction="sum") / len(idx)
            props = torch.cat([self._proposals(obj, dl), gt])  # ground truths join the proposals
            best, which = B.box_iou(props, gt).max(dim=1)
            roi_labels.append(torch.where(best >= 0.5, cls[which] + 1, 0))
            roi_targets.append(encode_boxes(gt[which], props))
            rois.append(props)
        cls_logits, roi_deltas = self._second_stage(feats, rois)
        roi_labels, roi_targets = torch.cat(roi_labels), torch.cat(roi_targets)
        fg = roi_labels > 0
        head_loss = F.cross_entropy(cls_logits, roi_labels)
        head_loss = head_loss + F.smooth_l1_loss(roi_deltas[fg], roi_targets[fg], beta=1 / 9, reduction="sum") / len(fg)
        return rpn_loss / len(images) + head_loss

    @torch.no_grad()
    def detect(self, images: Tensor, score_threshold: float = 0.05,
               iou_threshold: float = 0.5) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per image ``(boxes [K, 4], scores [K], labels [K])`` after per-class NMS."""
        feats, objectness, deltas = self(images)
        rois = [self._proposals(o, d) for o, d in zip(objectness, deltas)]
        probs, roi_deltas = self._second_stage(feats, rois)
        probs, results, start = probs.softmax(dim=1), [], 0
        for props in rois:
            p, d = probs[start:start + len(props), 1:], roi_deltas[start:start + len(props)]  # [R, C], [R, 4]
            start += len(props)
            boxes = decode_boxes(d, props)
            r, cls = (p > score_threshold).nonzero(as_tuple=True)
            keep = batched_nms(boxes[r], p[r, cls], cls, iou_threshold)[:20]
            results.append((boxes[r][keep], p[r, cls][keep], cls[keep]))
        return results


def average_precision(detections: list[tuple[Tensor, Tensor, Tensor]], gt_boxes: list[Tensor],
                      gt_labels: list[Tensor], num_classes: int, iou_threshold: float = 0.5) -> Tensor:
    """Per-class AP [C] at one IoU threshold: Pascal VOC's all-point interpolated area (2010 on).

    Detections of a class, pooled over images, are taken by decreasing score; each is a true
    positive if it overlaps a not-yet-matched ground truth of its class and image with
    IoU >= ``iou_threshold`` (the highest-IoU one), else a false positive. AP is the area under
    the precision-recall curve after making precision non-increasing. A class with no ground
    truth gets NaN.
    """
    if not len(detections) == len(gt_boxes) == len(gt_labels):
        raise ValueError("detections, gt_boxes and gt_labels must have one entry per image")
    ap = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    for c in range(num_classes):
        gts = [g[lab == c] for g, lab in zip(gt_boxes, gt_labels)]
        total = sum(len(g) for g in gts)
        if total == 0:
            continue
        # per image, the IoU of each of its class-c detections with each of its class-c objects
        ious = [B.box_iou(bx[lb == c].to(g.dtype), g) for (bx, _, lb), g in zip(detections, gts)]
        entries = [(float(s), i, k) for i, (_, sc, lb) in enumerate(detections)
                   for k, s in enumerate(sc[lb == c].tolist())]
        entries.sort(key=lambda e: -e[0])  # stable: equal scores keep image order
        used = [torch.zeros(len(g), dtype=torch.bool) for g in gts]
        tp = []
        for _, i, k in entries:
            hit = False
            if len(gts[i]):
                iou = ious[i][k].masked_fill(used[i], -1.0)
                j = int(iou.argmax())
                if iou[j] >= iou_threshold:
                    used[i][j], hit = True, True
            tp.append(hit)
        tp_t = torch.tensor(tp, dtype=torch.float64)
        recall = torch.cat([torch.zeros(1, dtype=torch.float64), tp_t.cumsum(0) / total])
        precision = torch.cat([torch.ones(1, dtype=torch.float64),
                               tp_t.cumsum(0) / torch.arange(1, len(tp) + 1, dtype=torch.float64)])
        precision = precision.flip(0).cummax(0).values.flip(0)  # non-increasing envelope
        ap[c] = ((recall[1:] - recall[:-1]) * precision[1:]).sum()
    return ap


def detection_scores(detections: list[tuple[Tensor, Tensor, Tensor]], gt_boxes: list[Tensor],
                     gt_labels: list[Tensor], num_classes: int) -> dict[str, float]:
    """mAP@0.5, recall@0.5 (any detection of the right class), mean best IoU per ground truth."""
    recalled, best_ious = [], []
    for (bx, _, lb), g, gl in zip(detections, gt_boxes, gt_labels):
        iou = B.box_iou(g, bx.to(g.dtype)).masked_fill(gl[:, None] != lb[None, :], -1.0)  # [G, D], same class only
        for row in iou:
            best = max(float(row.max()), 0.0) if len(row) else 0.0
            recalled.append(best >= 0.5)
            best_ious.append(best)
    ap = average_precision(detections, gt_boxes, gt_labels, num_classes)
    return {"mAP@0.5": float(ap.nanmean()), "recall@0.5": sum(recalled) / len(recalled),
            "mean IoU": sum(best_ious) / len(best_ious)}


def train_detector(model: nn.Module, images: Tensor, boxes: list[Tensor], labels: list[Tensor], *,
                   epochs: int, generator: torch.Generator, batch_size: int = 32, lr: float = 3e-3) -> list[float]:
    """Adam on shuffled mini-batches; returns the mean training loss per epoch.

    Anchor targets are computed once: (0.5, 0.4) for ``OneStageDetector`` (RetinaNet),
    (0.7, 0.3) for ``TwoStageDetector``'s RPN (Faster R-CNN). Every image needs >= 1 object.
    """
    two_stage = isinstance(model, TwoStageDetector)
    device = model.anchors.device
    classes, regs = model.targets(boxes, labels, *((0.7, 0.3) if two_stage else (0.5, 0.4)))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    model.train()
    for _ in range(epochs):
        perm, total = torch.randperm(len(images), generator=generator), 0.0
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            batch = [images[idx].to(device), classes[idx].to(device), regs[idx].to(device)]
            if two_stage:
                batch += [[boxes[i].to(device) for i in idx], [labels[i].to(device) for i in idx], generator]
            loss = model.loss(*batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / len(images))
    model.eval()
    return history
