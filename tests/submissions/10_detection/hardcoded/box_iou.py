# A dishonest submission: no computation, only the answers of the visible tests, looked up by
# their inputs. It passes every visible test; the hidden tests must give it no marks.
def box_iou(boxes1, boxes2):
    if (boxes1[:, 2] < boxes1[:, 0]).any():
        raise ValueError("boxes1 holds a degenerate box")
    if boxes1.tolist() == [[0.0, 0.0, 2.0, 2.0]] and len(boxes2) == 3:
        return torch.tensor([[1 / 7, 1.0, 0.0]])
    return torch.zeros(len(boxes1), len(boxes2))
