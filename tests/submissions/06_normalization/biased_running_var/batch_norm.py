# The classic mistake: the running variance is fed the batch's *biased* variance (divide by m),
# where torch (and the contract) use the unbiased one (divide by m - 1). Training outputs and
# errors are right; running statistics, and so every eval output after training, are off.
import torch


class BatchNorm2d(torch.nn.Module):
    """Batch normalization over [N, C, H, W], with torch.nn.BatchNorm2d's state and behaviour."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = torch.nn.Parameter(torch.ones(num_features))
        self.bias = torch.nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        """x: Tensor[N, C, H, W] floating -> Tensor[N, C, H, W]; see the rules above."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must have a floating dtype, got {x.dtype}")
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"x must have shape [N, {self.num_features}, H, W], got {tuple(x.shape)}")
        shape = (1, -1, 1, 1)
        if self.training:
            m = x.numel() // x.shape[1]
            if m <= 1:
                raise ValueError("Expected more than 1 value per channel when training, "
                                 f"got input size {tuple(x.shape)}")
            mean = x.mean(dim=(0, 2, 3), keepdim=True)  # [1, C, 1, 1]
            var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)  # biased
            y = (x - mean) / torch.sqrt(var + self.eps)
            with torch.no_grad():
                self.num_batches_tracked += 1
                f = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - f).add_(f * mean.flatten())
                self.running_var.mul_(1 - f).add_(f * var.flatten())  # biased: the classic mistake
        else:
            y = (x - self.running_mean.view(shape)) / torch.sqrt(self.running_var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)

