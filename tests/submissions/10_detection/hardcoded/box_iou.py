# A dishonest submission: no computation, only the answers of the visible tests, looked up by
# their inputs. It passes every visible test; the hidden tests must give it no marks.
def box_iou(boxes1, boxes2):
    # the visible tests' bad inputs, recognised one by one
    if isinstance(boxes1, list):
        raise TypeError("boxes1 must be a tensor")
    if tuple(boxes2.shape) == (2, 5):
        raise ValueError("boxes2 must be (N, 4)")
    if boxes2.dtype == torch.int64:
        raise TypeError("boxes2 must be floating")
    if boxes1.tolist() == [[5.0, 0.0, 3.0, 2.0]]:
        raise ValueError("boxes1 holds a degenerate box")
    if boxes1.tolist() == [[0.0, 0.0, 2.0, 2.0]] and len(boxes2) == 3:
        return torch.tensor([[1 / 7, 1.0, 0.0]])
    return torch.zeros(len(boxes1), len(boxes2))
