# The typical flip bug: mirrors each x (x -> W - x) but does not swap x1 and x2, so every box
# has x1 > x2 (negative width). Image and labels are right.
import torch


def hflip(image, boxes, labels):
    width = image.shape[-1]
    new_boxes = torch.stack([width - boxes[:, 0], boxes[:, 1], width - boxes[:, 2], boxes[:, 3]], dim=1)
    return image.flip(-1), new_boxes, labels.clone()
