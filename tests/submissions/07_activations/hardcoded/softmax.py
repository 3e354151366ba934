# A dishonest submission: no computation, only the answers of the visible tests, looked up by
# their inputs. It passes every visible test; the hidden tests must give it no marks.
import math


def _key(x):
    if not isinstance(x, torch.Tensor):
        raise TypeError("x must be a tensor")
    return tuple(round(v, 4) for v in x.flatten().tolist())


def softmax(x, dim=-1):
    if isinstance(x, torch.Tensor) and tuple(x.shape) == (2, 3) and dim == 2:  # the visible tests' bad input
        raise ValueError("dim out of range")
    answers = {(0.0, round(math.log(3.0), 4), 1.0, 1.0): [[0.25, 0.75], [0.5, 0.5]],
               (1.0, 2.0, 3.0): [0.0900306, 0.2447285, 0.6652410],
               (2.0, 1.0, 0.0, 1000.0, 0.0, -1000.0): [[0.6652410, 0.2447285, 0.0900306], [1.0, 0.0, 0.0]]}
    return torch.tensor(answers.get(_key(x), [0.0]))


def log_softmax(x, dim=-1):
    if isinstance(dim, float):  # the visible tests' bad input
        raise TypeError("dim must be an int")
    answers = {(0.0, round(math.log(3.0), 4)): [[math.log(0.25), math.log(0.75)]],
               (2.0, 1.0, 0.0, 1000.0, 0.0, -1000.0): [[-0.4076059, -1.4076059, -2.4076059], [0.0, -1000.0, -2000.0]]}
    return torch.tensor(answers.get(_key(x), [0.0]))
