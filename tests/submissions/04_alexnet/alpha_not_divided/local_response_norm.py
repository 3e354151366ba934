# The classic mix-up: the AlexNet paper's formula, alpha * sum(a^2), where the contract (and
# PyTorch) asks for alpha / size * sum(a^2). Everything else is right, so it earns the points
# of the error-handling cell only.
import torch
import torch.nn.functional as F


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input must have a floating dtype, got {input.dtype}")
    if input.ndim < 3:
        raise ValueError(f"input must have at least 3 dims, got {tuple(input.shape)}")
    if type(size) is not int:
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    channels = input.shape[1]
    squares = F.pad(input.pow(2).movedim(1, -1), (size // 2, (size - 1) // 2))
    window_sum = sum(squares[..., j:j + channels] for j in range(size)).movedim(-1, 1)
    return input / (k + alpha * window_sum) ** beta
