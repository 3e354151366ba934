"""LeNet-5, AlexNet and the pieces AlexNet added (chapter 04).

* :func:`local_response_norm` / :class:`LocalResponseNorm`: LRN, torch's signature and constants.
  The paper (Krizhevsky et al. 2012, Sec. 3.3) writes ``b = a / (k + alpha * sum a^2)^beta``;
  torch writes ``b = a / (k + alpha / n * sum a^2)^beta``. The paper's ``alpha = 1e-4`` is
  therefore torch's ``alpha = n * 1e-4 = 5e-4`` (see :data:`PAPER_LRN`).
* :class:`LeNet5` (LeCun et al. 1998), :class:`AlexNet` (the two-GPU paper version, written as
  one network with ``groups=2``), :class:`MiniAlexNet` (the same ideas at digits size).
* :func:`layer_costs`: parameters and multiply-accumulates of every conv/linear layer.
* :func:`random_crop_flip`: AlexNet-style crop (+ optional mirror) augmentation of a batch
  (from :mod:`cvlib.loaders`, which runs it per batch on the device).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import floating_tensor
from .loaders import random_crop_flip  # noqa: F401  (defined with the device loader, used here)

__all__ = ["PAPER_LRN", "local_response_norm", "LocalResponseNorm", "LeNet5", "AlexNet",
           "MiniAlexNet", "layer_costs", "random_crop_flip"]

# The paper's n=5, k=2, alpha=1e-4, beta=0.75 in torch's convention (alpha is divided by n).
PAPER_LRN = {"size": 5, "alpha": 5 * 1e-4, "beta": 0.75, "k": 2.0}


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """Local response normalization across channels, same contract as
    ``torch.nn.functional.local_response_norm``.

    ``b[:, c] = a[:, c] / (k + alpha / size * sum_{j in window(c)} a[:, j]^2) ** beta`` where
    ``window(c) = [c - size // 2, c + (size - 1) // 2]`` clipped to the existing channels
    (channels outside contribute 0; the sum is still divided by ``size``).

    Args:
        input: ``Tensor[N, C, *]`` floating, at least 3 dims (channels on dim 1).
        size: number of neighbouring channels ``n`` in the window, ``>= 1``.
    Returns:
        ``Tensor`` of the same shape, dtype and memory format (float16/bfloat16 are computed in
        float32, as torch does).
    """
    floating_tensor(input, "input")
    if input.ndim < 3:
        raise ValueError(f"input must have shape [N, C, *] with at least 3 dims, got {tuple(input.shape)}")
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    # float16/bfloat16 are computed in float32 and rounded once, as torch's CPU kernels do
    x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
    channels = x.shape[1]
    squares = x.pow(2).movedim(1, -1)  # [N, *, C]
    squares = F.pad(squares, (size // 2, (size - 1) // 2))  # [N, *, C + size - 1], zeros outside
    # window_sum[..., c] = sum of squares[..., c + j] for j < size: channels c - size//2 ... c + (size-1)//2
    window_sum = sum(squares[..., j:j + channels] for j in range(size)).movedim(-1, 1)  # [N, C, *]
    return (x / (k + alpha / size * window_sum).pow(beta)).to(input.dtype)


class LocalResponseNorm(nn.Module):
    """Module form of :func:`local_response_norm`; arguments as ``torch.nn.LocalResponseNorm``."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input: Tensor) -> Tensor:
        return local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


def _named(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) on ``[N, 1, 32, 32]`` images -> logits ``[N, num_classes]``.

    C1 conv 6@5x5 -> S2 2x2 average pool -> C3 conv 16@5x5 -> S4 pool -> C5 conv 120@5x5 (1x1
    output) -> F6 84 units -> output. Simplified: C3 connects to all 6 S2 maps (the paper's
    table uses 60 of the 96 map pairs), S2/S4 are plain average pools (no trainable
    coefficient and bias), tanh instead of 1.7159 tanh(2x/3), a linear output instead of RBF units.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = _named(
            ("c1", nn.Conv2d(1, 6, 5)), ("act1", nn.Tanh()), ("s2", nn.AvgPool2d(2)),
            ("c3", nn.Conv2d(6, 16, 5)), ("act3", nn.Tanh()), ("s4", nn.AvgPool2d(2)),
            ("c5", nn.Conv2d(16, 120, 5)), ("act5", nn.Tanh()),
        )
        self.classifier = _named(
            ("flatten", nn.Flatten()), ("f6", nn.Linear(120, 84)), ("act6", nn.Tanh()),
            ("output", nn.Linear(84, num_classes)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class AlexNet(nn.Module):
    """AlexNet as in the paper (Krizhevsky et al. 2012), ``[N, 3, 224, 224]`` -> ``[N, num_classes]``.

    96-256-384-384-256 conv channels. The paper split every layer over two GPUs; conv2, conv4
    and conv5 only saw the kernel maps on their own GPU, which is ``groups=2`` on one device
    (``groups=1`` gives the un-split network). LRN (paper constants) after the ReLUs of conv1
    and conv2, overlapping 3x3 stride-2 max pooling after norm1, norm2 and conv5, dropout 0.5
    on the outputs of fc6 and fc7. conv1 uses padding 2 so that 224 gives 55x55, as
    torchvision does (the paper's 224 with no padding would give 54; 227 gives 55).
    """

    def __init__(self, num_classes: int = 1000, groups: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = _named(
            ("conv1", nn.Conv2d(3, 96, 11, stride=4, padding=2)), ("relu1", nn.ReLU(inplace=True)),
            ("norm1", LocalResponseNorm(**PAPER_LRN)), ("pool1", nn.MaxPool2d(3, 2)),
            ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=groups)), ("relu2", nn.ReLU(inplace=True)),
            ("norm2", LocalResponseNorm(**PAPER_LRN)), ("pool2", nn.MaxPool2d(3, 2)),
            ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU(inplace=True)),
            ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=groups)), ("relu4", nn.ReLU(inplace=True)),
            ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=groups)), ("relu5", nn.ReLU(inplace=True)),
            ("pool5", nn.MaxPool2d(3, 2)),
        )
        self.classifier = _named(
            ("flatten", nn.Flatten()),
            ("fc6", nn.Linear(256 * 6 * 6, 4096)), ("relu6", nn.ReLU(inplace=True)), ("drop6", nn.Dropout(dropout)),
            ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU(inplace=True)), ("drop7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(4096, num_classes)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class MiniAlexNet(nn.Module):
    """AlexNet's layout at digits size: ``[N, in_channels, H, W]`` -> ``[N, num_classes]``.

    Five 3x3 convs (widths ``width * (1, 2, 3, 3, 2)``, conv2/4/5 grouped), LRN after the first
    two, max pooling after conv1, conv2 and conv5, then global average pooling (so any H, W
    works: 8x8 digits or 32x32 CIFAR) and three linear layers with dropout after fc6 and fc7.
    The arguments switch one idea at a time for the chapter's ablations.

    Args:
        activation: ``"relu"``, ``"tanh"`` or ``"sigmoid"`` after every conv and hidden linear layer.
        pool_kernel: 3 (overlapping 3x3 stride-2, padding 1) or 2 (non-overlapping 2x2
            stride 2); both halve an even H, W, so the two nets have identical shapes.
        lrn: LRN with the paper's constants after conv1 and conv2, or nothing.
        dropout: dropout probability in the classifier (0 switches it off).
        groups: 2 splits conv2/4/5 like the two-GPU net; 1 does not.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, width: int = 16,
                 hidden: int = 128, activation: str = "relu", pool_kernel: int = 3,
                 lrn: bool = True, dropout: float = 0.5, groups: int = 2) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if pool_kernel not in (2, 3):
            raise ValueError(f"pool_kernel must be 2 or 3, got {pool_kernel!r}")
        act = _ACTIVATIONS[activation]
        c1, c2, c3, c4, c5 = (width * m for m in (1, 2, 3, 3, 2))

        def pool() -> nn.Module:
            return nn.MaxPool2d(3, 2, padding=1) if pool_kernel == 3 else nn.MaxPool2d(2, 2)

        def norm() -> nn.Module:
            return LocalResponseNorm(**PAPER_LRN) if lrn else nn.Identity()

        self.features = _named(
            ("conv1", nn.Conv2d(in_channels, c1, 3, padding=1)), ("act1", act()), ("norm1", norm()), ("pool1", pool()),
            ("conv2", nn.Conv2d(c1, c2, 3, padding=1, groups=groups)), ("act2", act()), ("norm2", norm()), ("pool2", pool()),
            ("conv3", nn.Conv2d(c2, c3, 3, padding=1)), ("act3", act()),
            ("conv4", nn.Conv2d(c3, c4, 3, padding=1, groups=groups)), ("act4", act()),
            ("conv5", nn.Conv2d(c4, c5, 3, padding=1, groups=groups)), ("act5", act()), ("pool5", pool()),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = _named(
            ("flatten", nn.Flatten()),
            ("fc6", nn.Linear(c5, hidden)), ("act6", act()), ("drop6", nn.Dropout(dropout)),
            ("fc7", nn.Linear(hidden, hidden)), ("act7", act()), ("drop7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(hidden, num_classes)),
        )
        # He et al. (2015) init for every activation, so that the three nets of an activation
        # comparison start from identical weights; torch's default init is too small for 8 layers.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def layer_costs(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """Parameters and multiply-accumulates (MACs) of every ``Conv2d`` and ``Linear`` in ``model``.

    Runs one forward pass on zeros of ``input_shape`` (``[1, C, H, W]``: costs are per image)
    and reads each layer's output size. A conv's MACs are
    ``out_elements * (in_channels / groups) * kh * kw``; a linear layer's are ``in * out``
    (biases counted as parameters, not MACs). Returns one dict per layer, in call order:
    ``{"name", "params", "macs", "out_shape"}``.
    """
    if not isinstance(input_shape, tuple) or len(input_shape) < 2 or input_shape[0] != 1:
        raise ValueError(f"input_shape must be a tuple (1, C, ...), got {input_shape!r}")
    rows: list[dict] = []
    names = {module: name for name, module in model.named_modules()}

    def hook(module: nn.Module, _inputs, output: Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs = output.numel() * module.in_channels // module.groups * kh * kw
        else:
            macs = module.in_features * module.out_features * (output.numel() // module.out_features)
        params = sum(p.numel() for p in module.parameters())
        rows.append({"name": names[module], "params": params, "macs": macs, "out_shape": tuple(output.shape)})

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows
