"""Small models that train in seconds on a laptop CPU.

Later chapters add the historical architectures (LeNet-5, AlexNet) in modules of their own;
this one holds the baseline the early chapters train.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["SmallCNN"]


class SmallCNN(nn.Module):
    """Two conv-BN-ReLU blocks, a 2x2 max-pool, global average pooling and a linear head.

    Input ``[N, in_channels, H, W]`` (any H, W >= 2), output logits ``[N, num_classes]``.
    Built as named blocks, like torchvision's models: ``features`` then ``classifier``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * width, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
