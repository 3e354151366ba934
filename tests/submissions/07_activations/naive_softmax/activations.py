# The reference solution of this cell, so that this submission differs from it in one cell only.
def sigmoid(x):
    """1 / (1 + exp(-x)), for any x including +-inf."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    z = torch.exp(-torch.where(x >= 0, x, -x))  # exp(-|x|) in (0, 1]
    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))


def sigmoid_grad(x):
    """sigmoid'(x) = sigmoid(x) * (1 - sigmoid(x)), by hand (no autograd)."""
    s = sigmoid(x)
    return s * (1 - s)


def softplus(x):
    """log(1 + exp(x)), for any x including +-inf."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    # max(x, 0) + log(1 + exp(-|x|)); where() instead of clamp/abs for the gradient 1/2 at x = 0
    return torch.where(x >= 0, x, 0.0) + torch.log1p(torch.exp(-torch.where(x >= 0, x, -x)))


def softplus_grad(x):
    """softplus'(x) = sigmoid(x), by hand (no autograd)."""
    return sigmoid(x)


def gelu(x):
    """x * Phi(x), Phi the standard normal CDF (exact, with erf)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    return x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def gelu_grad(x):
    """gelu'(x) = Phi(x) + x * phi(x), by hand (no autograd)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    return 0.5 * (1 + torch.erf(x / math.sqrt(2))) + x * torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
