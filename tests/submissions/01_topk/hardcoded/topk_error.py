# A dishonest submission: no computation, only the answers of the visible tests, looked up by
# their inputs. It passes every visible test; the hidden tests must give it no marks.
def topk_error(logits, target, k=1):
    # the visible tests' bad inputs, recognised one by one
    if k == 1.5:
        raise TypeError("k must be an int")
    if tuple(logits.shape) == (3,):
        raise ValueError("logits must be (N, C)")
    if logits.dtype == torch.int64:
        raise TypeError("logits must be floating")
    if target.tolist() == [0, 3]:
        raise ValueError("target out of range")
    if target.dtype == torch.float32:
        raise TypeError("target must hold integers")
    if tuple(logits.shape) == (0, 3):
        raise ValueError("an empty batch")
    if k > logits.shape[1]:
        raise ValueError(f"k={k} is larger than the number of classes")
    key = (tuple(tuple(round(v, 4) for v in row) for row in logits.tolist()), tuple(target.tolist()), k)
    visible = (((0.1, 0.7, 0.2), (0.5, 0.3, 0.2), (0.2, 0.3, 0.5), (0.6, 0.1, 0.3)), (1, 1, 0, 2))
    tied = (((1.0, 1.0, 0.0), (2.0, 1.0, 1.0)), (0, 2))
    answers = {(*visible, 1): 0.75, (*visible, 2): 0.25, (*visible, 3): 0.0,
               (*tied, 1): 1.0, (*tied, 2): 0.5}
    return answers.get(key, 0.0)
