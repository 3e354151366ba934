# The typical flip bug: mirrors each x (x -> W - x) but does not swap x1 and x2, so every box
# has x1 > x2 (negative width). Image and labels are right.
import torch


def horizontal_flip(sample):
    image, boxes, labels = sample
    width = image.shape[-1]
    mirrored = torch.stack([width - boxes[:, 0], boxes[:, 1], width - boxes[:, 2], boxes[:, 3]], dim=1)
    return Sample(image.flip(-1), mirrored, labels.clone())
