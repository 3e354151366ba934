"""cvlib: the tested library behind the CV Fundamentals course.

A flat package, one module per topic:

* :mod:`cvlib.device`  -- ``pick_device``, ``seed_everything``, ``experiment_scale``
* :mod:`cvlib.data`    -- offline digits and CIFAR-10 as train/val/test ``Splits``
* :mod:`cvlib.topk` -- top-k accuracy and error (chapter 01)
* :mod:`cvlib.models`  -- small models that train in seconds on a CPU; ``PlainVGG`` (chapter 06)
* :mod:`cvlib.loaders` -- ``DeviceLoader`` (data and crop/flip augmentation kept on the GPU), ``make_loader``
* :mod:`cvlib.train`   -- ``fit`` (bf16, channels-last, cuDNN autotuning, ``torch.compile`` switches;
  data-parallel under ``torchrun``), ``evaluate``, ``prepare``
* :mod:`cvlib.callbacks` -- what ``fit`` does besides training: ``Callback``, ``LRSchedule``,
  ``Checkpoint`` / ``load_checkpoint``, ``ProgressBar``, ``History``
* :mod:`cvlib.distributed` -- ``setup``/``cleanup`` for ``torchrun`` + ``DistributedDataParallel``;
  :mod:`cvlib.ddp_train` is the data-parallel training script (``torchrun -m cvlib.ddp_train``)
* :mod:`cvlib.early_stopping`  -- ``EarlyStopping`` (patience, ``min_delta``, best-weights restore; chapter 02)
* :mod:`cvlib.conv_arithmetic` -- output sizes, receptive fields, parameter counts, ``summary`` (chapter 03)
* :mod:`cvlib.alexnet` -- LeNet-5, AlexNet and a digits-sized AlexNet, local response normalization (chapter 04)
* :mod:`cvlib.tuning`  -- sanity checks and the learning-rate range test (chapter 05)
* :mod:`cvlib.diagnostics` -- confidence, under-/over-fitting, measured receptive field, distinct units (chapter 05)
* :mod:`cvlib.tta` -- flip test-time augmentation (chapter 05)
* :mod:`cvlib.recipe` -- ``Recipe``: a training recipe built one measured change at a time (chapter 05)
* :mod:`cvlib.normalization` -- BatchNorm (with a hand-written backward), LayerNorm, GroupNorm, InstanceNorm
  from scratch (chapter 06)
* :mod:`cvlib.whitening` -- PCA and ZCA whitening (chapter 06)
* :mod:`cvlib.constraints` -- the max-norm weight constraint (chapter 06)
* :mod:`cvlib.activations` -- common activations as functions and modules matching torch; stable softmax,
  log-softmax, log-sum-exp (chapter 07)
* :mod:`cvlib.optimizers` -- SGD, AdaGrad, Adadelta, RMSProp, Adam, AdamW, NAdam from scratch, matching
  ``torch.optim`` (chapter 08)
* :mod:`cvlib.landscapes` -- test surfaces (Rosenbrock, a tilted quadratic), Newton's method, ``minimize``
  (paths of any optimizer), gradients of classification losses with respect to the logits (chapter 08)
* :mod:`cvlib.imbalance` -- long-tailed splits, per-class recall and balanced accuracy, re-sampling, a
  class-balanced sampler, class weights, sigmoid and softmax focal loss (chapter 09)
* :mod:`cvlib.boxes` -- box formats (VOC's 1-based pixels), IoU/GIoU, NMS and batched NMS matching
  ``torchvision.ops``, anchors and their 0.7/0.3 assignment with forced best matches (chapter 10)
* :mod:`cvlib.detection` -- synthetic shapes, toy one-stage and two-stage detectors, VOC average
  precision (chapter 10)
* :mod:`cvlib.box_transforms` -- box-aware flips, crops, SSD and YOLO augmentation (chapter 11)
"""

import importlib

__all__ = [
    "activations", "alexnet", "box_transforms", "boxes", "callbacks", "constraints", "conv_arithmetic", "data",
    "detection", "device", "diagnostics", "distributed", "early_stopping", "imbalance", "landscapes", "loaders",
    "models", "normalization", "optimizers", "recipe", "topk", "train", "tta", "tuning", "whitening",
]


def __getattr__(name: str):
    """Import a submodule on first use (PEP 562): ``import cvlib`` stays cheap, and
    ``cvlib.topk`` does not pay for torchvision, which only the detection modules need."""
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cvlib' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])


__version__ = "0.1.0"
