# A correct IoU matrix.
def box_iou(boxes1, boxes2):
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(boxes, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor")
        if not boxes.is_floating_point():
            raise TypeError(f"{name} must have a floating dtype")
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"{name} must have shape [N, 4]")
        if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
            raise ValueError(f"{name} holds a degenerate box")
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, torch.ones_like(union)), 0.0)
