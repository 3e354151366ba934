# The thresholds and the ignore band, but rule 4 is forgotten: no anchor is forced positive
# for a ground truth that no anchor covers with IoU >= high, whatever force_best says.
def assign_anchors(anchors, gt_boxes, high=0.7, low=0.3, force_best=True):
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
    try:
        iou = box_iou(gt_boxes, anchors)
    except (TypeError, ValueError) as exc:
        raise type(exc)(str(exc).replace("boxes1", "gt_boxes").replace("boxes2", "anchors")) from None
    if gt_boxes.shape[0] == 0 or anchors.shape[0] == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.long), anchors.new_zeros(anchors.shape[0])
    best, labels = iou.max(dim=0)
    labels[best < high] = -2
    labels[best < low] = -1
    return labels, best
