"""Test-time augmentation (chapter 05): average a model's predictions over views of each image.

* :class:`FlipTTA`: horizontal-flip test-time augmentation, the last step of the fast-training
  recipe (average the logits of an image and of its mirror).
"""

from __future__ import annotations

from torch import Tensor, nn

from ._checks import floating_tensor

__all__ = ["FlipTTA"]


class FlipTTA(nn.Module):
    """Horizontal-flip test-time augmentation: ``model`` applied to each image and to its
    left-right mirror, the two logits averaged.

    ``FlipTTA(model)(x[N, C, H, W]) -> logits[N, K] = (model(x) + model(x.flip(-1))) / 2``

    The wrapper shares ``model`` (no copy) and has no parameters of its own; ``.eval()`` and
    ``.train()`` reach the wrapped model. It is meant for evaluation (``evaluate(FlipTTA(model),
    ...)``), and it helps only when a mirror image belongs to the same class and the model has
    learned that (it was trained with random flips): on photographs (CIFAR-10, ImageNet) it
    is the usual last step of a fast-training recipe; on digits, letters or text it is not, a
    mirrored 3 is not a 3. The result is mirror-invariant: ``FlipTTA(model)(x.flip(-1))``
    equals ``FlipTTA(model)(x)`` (with deterministic kernels, exactly: the sum commutes). It
    costs two forward passes per batch.

    Args:
        model: maps ``x[N, C, H, W]`` to ``logits[N, K]`` (any output shape works: the two
            outputs are averaged element-wise).
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        if floating_tensor(x, "x").ndim != 4:
            raise ValueError(f"FlipTTA expects a floating Tensor[N, C, H, W], got shape {tuple(x.shape)}")
        return (self.model(x) + self.model(x.flip(-1))) / 2
