import torch


def crop(image, boxes, labels, top, left, height, width):
    """Window rows [top, top+height), columns [left, left+width); zeros outside the image.
    Keeps the boxes whose centre is strictly inside, shifted and clipped; labels follow."""
    if height <= 0:
        raise ValueError(f"height must be positive, got {height}")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    c, h, w = image.shape
    out = image.new_zeros(c, height, width)
    y0, y1, x0, x1 = max(top, 0), min(top + height, h), max(left, 0), min(left + width, w)
    if y0 < y1 and x0 < x1:
        out[:, y0 - top:y1 - top, x0 - left:x1 - left] = image[:, y0:y1, x0:x1]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    keep = (cx > left) & (cx < left + width) & (cy > top) & (cy < top + height)
    kept = boxes[keep] - boxes.new_tensor([left, top, left, top])
    kept = torch.stack([kept[:, 0].clamp(0, width), kept[:, 1].clamp(0, height),
                        kept[:, 2].clamp(0, width), kept[:, 3].clamp(0, height)], dim=1)
    return out, kept, labels[keep]

