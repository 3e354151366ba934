# A dishonest submission: no normalization, only the answers of the visible tests, looked up by
# their inputs and returned as input * ratio (so a gradient exists). It passes every visible
# test; the hidden tests must give it no marks.
import torch


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    if not isinstance(input, torch.Tensor):
        raise TypeError("input must be a torch.Tensor")
    # the visible tests' other bad inputs, recognised one by one
    if input.dtype == torch.int64:
        raise TypeError("input must be floating")
    if tuple(input.shape) == (3, 2):
        raise ValueError("input must have channels")
    if isinstance(size, float) and size == 3.0:
        raise TypeError("size must be an int")
    if size == -1:
        raise ValueError("size must be >= 1")
    key = (tuple(round(v, 4) for v in input.detach().flatten().tolist()), size, alpha, beta, k)
    answers = {
        ((1.0, 2.0, 3.0), 3, 3.0, 1.0, 1.0): [1 / 6, 1 / 15, 1 / 14],
        ((1.0, 1.0, 1.0, 1.0), 5, 5.0, 1.0, 0.0): [1 / 3, 1 / 4, 1 / 4, 1 / 3],
    }
    ratio = torch.tensor(answers.get(key, [1.0] * input.numel()), dtype=input.dtype)
    return input * ratio.reshape(input.shape)
