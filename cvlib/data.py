"""Datasets the course trains on, offline first.

* :func:`load_digits`: scikit-learn's handwritten digits (1,797 real 8x8 scans, 10 classes).
  The data ships inside scikit-learn, so every chapter and assignment runs with no network.
* :func:`load_cifar10`: CIFAR-10 read through ``torchvision.datasets.CIFAR10`` from a folder
  you already have (or download on request). A missing folder is a clear error, never a
  silent switch to another dataset.

Both return a :class:`Splits` of ``TensorDataset`` s holding normalized floating-point images
``[N, C, H, W]`` (``float32`` unless ``dtype=`` asks for another, e.g. the ``float64`` of
``cvlib.device.experiment_dtype("cpu")``) and ``int64`` labels ``[N]``; the normalization statistics come from the
training split only, so nothing about validation or test leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

__all__ = ["Splits", "load_digits", "load_cifar10"]


@dataclass(frozen=True)
class Splits:
    """Train/validation/test splits of one dataset.

    Attributes:
        train, val, test: ``TensorDataset(images[N, C, H, W] dtype, labels[N] int64)``.
        classes: class names, ``classes[label]``.
        mean, std: per-channel statistics of the raw training images (in [0, 1] pixel
            units) that were used to normalize every split: ``x = (raw - mean) / std``.
    """

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _check_fractions(**fractions: float) -> None:
    for name, value in fractions.items():
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    if sum(fractions.values()) >= 1.0:
        raise ValueError(f"{' + '.join(fractions)} must leave some data for training")


def _stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with ``fraction`` of every class held out."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    keep, held_out = train_test_split(index, test_size=fraction, stratify=labels, random_state=seed)
    return np.sort(keep), np.sort(held_out)


_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _check_dtype(dtype) -> type:
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return _DTYPES[dtype]


def _normalize(images: np.ndarray, train_index: np.ndarray, dtype=torch.float32) -> tuple[torch.Tensor, tuple, tuple]:
    """``images`` float [N, C, H, W] in [0, 1] -> normalized tensor of ``dtype``, per-channel mean, std."""
    np_dtype = _check_dtype(dtype)
    train = images[train_index]
    mean = train.mean(axis=(0, 2, 3), dtype=np.float64)  # [C]
    std = train.std(axis=(0, 2, 3), dtype=np.float64)  # [C]
    shape = (1, -1, 1, 1)
    images = images.astype(np_dtype, copy=False)
    normalized = (images - mean.astype(np_dtype).reshape(shape)) / std.astype(np_dtype).reshape(shape)
    return (
        torch.from_numpy(normalized.astype(np_dtype, copy=False)),
        tuple(round(float(m), 6) for m in mean),
        tuple(round(float(s), 6) for s in std),
    )


def _make_splits(images, labels, train_i, val_i, test_i, classes, dtype=torch.float32) -> Splits:
    x, mean, std = _normalize(images, train_i, dtype)
    y = torch.from_numpy(labels.astype(np.int64))
    pick = lambda i: TensorDataset(x[i], y[i])  # noqa: E731
    return Splits(pick(train_i), pick(val_i), pick(test_i), tuple(classes), mean, std)


def load_digits(*, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
                dtype: torch.dtype = torch.float32) -> Splits:
    """scikit-learn's digits as ``[N, 1, 8, 8]`` images, split train/val/test by class.

    Args:
        val_fraction, test_fraction: share of the 1,797 images held out for each (stratified,
            so every split has every digit in the same proportion).
        seed: seed of the split; the same seed gives the same split on every machine.
        dtype: ``torch.float32`` or ``torch.float64`` images (the book's CPU scale uses the
            latter: see ``cvlib.device.experiment_dtype``).
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    _check_fractions(val_fraction=val_fraction, test_fraction=test_fraction)
    _check_dtype(dtype)
    raw = _sk_load_digits()
    images = (raw.images.astype(_DTYPES[dtype]) / 16.0)[:, None]  # pixel counts 0..16 -> [0, 1]
    labels = raw.target
    rest, test_i = _stratified_split(labels, test_fraction, seed)
    train_j, val_j = _stratified_split(labels[rest], val_fraction / (1 - test_fraction), seed)
    classes = [str(c) for c in raw.target_names]
    return _make_splits(images, labels, rest[train_j], rest[val_j], test_i, classes, dtype)


def _read_cifar10(root: Path, train: bool, download: bool):
    from torchvision.datasets import CIFAR10

    try:
        return CIFAR10(root=str(root), train=train, download=download)
    except RuntimeError as exc:
        if download or "not found" not in str(exc).lower():
            raise
        raise FileNotFoundError(
            f"CIFAR-10 not found or corrupted in {root / CIFAR10.base_folder} (torchvision "
            f"checks every file's MD5). Put the "
            f"extracted '{CIFAR10.base_folder}' folder inside {root}, or call "
            f"load_cifar10(..., download=True) on a machine with network access."
        ) from None


def load_cifar10(
    root: str | Path, *, val_fraction: float = 0.1, seed: int = 0, download: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Splits:
    """CIFAR-10 as ``[N, 3, 32, 32]`` images: 50,000 training images split into train/val
    (stratified), and the official 10,000-image test set.

    Args:
        root: folder that contains (or will contain) ``cifar-10-batches-py``.
        val_fraction: share of the training images held out for validation.
        seed: seed of the train/val split.
        download: fetch the archive if it is missing (needs network access; off by default
            so that nothing is downloaded unless you ask).
        dtype: ``torch.float32`` (default) or ``torch.float64`` images.

    Raises:
        FileNotFoundError: the data is not in ``root`` and ``download`` is False.
    """
    _check_fractions(val_fraction=val_fraction)
    _check_dtype(dtype)
    root = Path(root).expanduser()
    train_set = _read_cifar10(root, True, download)
    test_set = _read_cifar10(root, False, download)
    # .data is uint8 [N, 32, 32, 3]; one array so train, val and test share the statistics.
    images = np.concatenate([train_set.data, test_set.data]).transpose(0, 3, 1, 2) / np.float32(255)
    labels = np.asarray(train_set.targets + test_set.targets)
    n_train = len(train_set.targets)
    train_i, val_i = _stratified_split(labels[:n_train], val_fraction, seed)
    test_i = np.arange(n_train, len(labels))
    return _make_splits(images, labels, train_i, val_i, test_i, train_set.classes, dtype)
