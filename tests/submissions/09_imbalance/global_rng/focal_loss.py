# A correct loss (the solution's), so that only the sampler is judged.
def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """-alpha_t (1 - p_t)^gamma log(p_t), p = sigmoid(inputs); torchvision's conventions."""
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
        raise TypeError(f"inputs must be a floating-point torch.Tensor, got {getattr(inputs, 'dtype', type(inputs))}")
    if not isinstance(targets, torch.Tensor) or targets.shape != inputs.shape:
        raise ValueError(f"targets must be a tensor of shape {tuple(inputs.shape)}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (0 <= alpha <= 1 or alpha == -1):
        raise ValueError(f"alpha must be in [0, 1] or -1, got {alpha!r}")
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    t = targets.to(inputs.dtype)
    ce = F.softplus(inputs) - inputs * t  # -t log p - (1-t) log(1-p), from the logits
    p = torch.sigmoid(inputs)
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss
