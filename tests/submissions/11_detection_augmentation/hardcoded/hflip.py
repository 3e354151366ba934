# A dishonest submission: no computation, only the answers of the visible tests, looked up by
# their inputs. It passes every visible test; the hidden tests must give it no marks.
import torch


def hflip(image, boxes, labels):
    if boxes.tolist() == [[0.0, 0.0, 2.0, 3.0], [3.0, 1.0, 6.0, 4.0]]:
        return image.flip(-1), torch.tensor([[4.0, 0.0, 6.0, 3.0], [0.0, 1.0, 3.0, 4.0]]), labels
    return image, boxes, labels
