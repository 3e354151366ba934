# A dishonest submission: no computation, only the answers of the visible tests, looked up by
# their inputs. It passes every visible test; the hidden tests must give it no marks.
import torch


def horizontal_flip(sample):
    image, boxes, labels = sample
    if boxes.tolist() == [[0.0, 0.0, 2.0, 3.0], [3.0, 1.0, 6.0, 4.0]]:
        return Sample(image.flip(-1), torch.tensor([[4.0, 0.0, 6.0, 3.0], [0.0, 1.0, 3.0, 4.0]]), labels)
    return sample
