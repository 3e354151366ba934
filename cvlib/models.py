"""Small models that train in seconds on a laptop CPU.

* :class:`SmallCNN`: the baseline the early chapters train.
* :class:`PlainVGG`: a VGG-style stack of 3x3 convolutions with or without a norm layer, the
  network chapter 06 trains with and without batch norm.

Later chapters add the historical architectures (LeNet-5, AlexNet) in modules of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

__all__ = ["SmallCNN", "DIGITS_VGG", "PlainVGG"]


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


# 10 convolutions at digits size: 8x8 -> 4x4 -> 2x2 -> 1x1 ("M" is a 2x2 max pool).
DIGITS_VGG = (8, 8, "M", 16, 16, 16, "M", 32, 32, 32, 32, 32, "M")


class PlainVGG(nn.Module):
    """VGG-style network (Simonyan and Zisserman 2015): 3x3 convolutions (padding 1) and 2x2 max
    pools as listed in ``cfg``, each conv followed by ``norm_layer(channels)`` if one is given and
    a ReLU; then global average pooling and a linear layer. ``[N, in_channels, H, W]`` ->
    ``[N, num_classes]``; H and W must survive the pools (8x8 for :data:`DIGITS_VGG`, or 32x32).

    ``norm_layer`` is a class or function like ``torch.nn.BatchNorm2d`` (convs then have no bias,
    as BN's beta replaces it) or ``None`` for the plain network. Initialized as torchvision's VGG:
    Kaiming-normal (fan-out) convs, zero biases, BN weight 1 and bias 0, linear N(0, 0.01).
    """

    def __init__(self, cfg: Sequence[int | str] = DIGITS_VGG, in_channels: int = 1, num_classes: int = 10,
                 norm_layer: Callable[[int], nn.Module] | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"cfg entries must be positive ints or 'M', got {v!r}")
            layers.append(nn.Conv2d(channels, v, 3, padding=1, bias=norm_layer is None))
            if norm_layer is not None:
                layers.append(norm_layer(v))
            layers.append(nn.ReLU(inplace=True))
            channels = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)))
