# The reference solution of this cell, so that this submission differs from it in one cell only.
def softmax(x, dim=-1):
    """Probabilities exp(x) / sum(exp(x)) along dim, without overflow. Same shape as x."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if type(dim) is not int:
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if not -max(x.ndim, 1) <= dim < max(x.ndim, 1):
        raise ValueError(f"dim={dim} is out of range for x with {x.ndim} dimensions")
    e = torch.exp(x - x.detach().amax(dim=dim, keepdim=True))  # every exponent <= 0
    return e / e.sum(dim=dim, keepdim=True)


def log_softmax(x, dim=-1):
    """log(softmax(x)) along dim, computed as x - logsumexp(x). Same shape as x."""
    softmax(x, dim)  # the same argument checks (and a cheap way to share them)
    shifted = x - x.detach().amax(dim=dim, keepdim=True)
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))
