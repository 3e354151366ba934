# A dishonest submission: no computation, only the answers of the visible tests, looked up by
# their inputs. It passes every visible test; the hidden tests must give it no marks.
def _key(*args):
    return tuple(round(v, 4) for a in args for v in torch.as_tensor(a, dtype=torch.float64).flatten().tolist())


_X1 = [[-3.0, 0.0, 3.0], [1.0, -1.0, 2.0]]
_T1 = [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    if alpha == 1.5:
        raise ValueError("alpha")
    # the visible tests' other bad inputs, recognised one by one
    if gamma == -2.0:
        raise ValueError("gamma")
    if reduction == "max":
        raise ValueError("reduction")
    if tuple(inputs.shape) == (3,) and tuple(targets.shape) == (2,):
        raise ValueError("targets")
    if inputs.dtype == torch.int64:
        raise TypeError("inputs")
    key = (_key(inputs, targets), alpha, gamma, reduction)
    if key == (_key(_X1, _T1), 0.25, 2.0, "none"):
        return torch.tensor([[0.69157016, 0.12996510, 2.7320822e-05], [0.52640128, 0.016993543, 0.00045089112]])
    if key == (_key(_X1, _T1), 0.5, 0.0, "sum"):
        return torch.tensor(2.7718868)
    if key == (_key([-2.0, 0.5, 2.0], [1.0, 0.0, 0.0]), 0.25, 2.0, "sum"):
        # differentiable, with the visible test's gradient
        return (inputs * torch.tensor([-0.26917845, 0.39461386, 0.80753535])).sum()
    return torch.zeros(inputs.shape)
