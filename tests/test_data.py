"""cvlib.data: the offline digits splits and CIFAR-10 through torchvision, on a fixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sk_load_digits

from cvlib.data import load_cifar10, load_digits
from helpers import CIFAR_CLASSES


def _labels(ds):
    return ds.tensors[1]


def test_digits_shapes_dtypes_and_disjoint_cover():
    s = load_digits()
    sizes = [len(s.train), len(s.val), len(s.test)]
    assert sum(sizes) == 1797 and sizes == [1077, 360, 360]
    for ds in (s.train, s.val, s.test):
        x, y = ds.tensors
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8)
        assert y.dtype == torch.int64 and y.min() >= 0 and y.max() <= 9
    assert s.classes == tuple("0123456789")
    # Every original image appears exactly once across the splits (undo the normalization).
    raw = torch.from_numpy(sk_load_digits().images.astype(np.float32) / 16).flatten(1)
    back = torch.cat([ds.tensors[0] for ds in (s.train, s.val, s.test)]).flatten(1) * s.std[0] + s.mean[0]
    key = lambda t: sorted(map(tuple, torch.round(t * 16).int().tolist()))  # noqa: E731
    assert key(back) == key(raw)


def test_digits_normalized_with_training_statistics_only():
    s = load_digits()
    x = s.train.tensors[0]
    assert abs(x.mean().item()) < 1e-5 and abs(x.std(unbiased=False).item() - 1) < 1e-4
    assert abs(s.val.tensors[0].mean().item()) > 1e-4  # val has its own, slightly different stats


def test_digits_split_is_stratified_and_seeded():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    assert torch.equal(a.val.tensors[0], b.val.tensors[0])
    assert not torch.equal(a.val.tensors[0], c.val.tensors[0])
    counts = torch.bincount(_labels(a.test), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # 360 / 10 per class, +-1


@pytest.mark.parametrize("kwargs,match", [
    ({"val_fraction": 0.0}, "val_fraction must be in"),
    ({"test_fraction": 1.2}, "test_fraction must be in"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "must leave some data"),
])
def test_digits_bad_fractions(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_digits(**kwargs)


def test_cifar10_reads_the_cifar_format(cifar10_root):
    s = load_cifar10(cifar10_root, val_fraction=0.2)
    assert (len(s.train), len(s.val), len(s.test)) == (80, 20, 20)
    assert s.classes == tuple(CIFAR_CLASSES)
    for ds in (s.train, s.val, s.test):
        assert ds.tensors[0].shape[1:] == (3, 32, 32) and ds.tensors[0].dtype == torch.float32
    assert torch.bincount(_labels(s.val), minlength=10).tolist() == [2] * 10
    assert len(s.mean) == len(s.std) == 3
    # the test split is the official test batch, in order: its first red pixel was 0
    first_red = s.test.tensors[0][:, 0, 0, 0] * s.std[0] + s.mean[0]
    torch.testing.assert_close(first_red, torch.zeros(20), atol=1e-5, rtol=0)


def test_cifar10_missing_folder_names_the_folder_and_the_flag(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in message
    assert "download=True" in message


def test_cifar10_corrupted_file_is_reported(cifar10_root):
    (cifar10_root / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"truncated")
    with pytest.raises(FileNotFoundError, match="not found or corrupted"):
        load_cifar10(cifar10_root)


def test_float64_images_are_the_float32_ones_computed_in_float64(cifar10_root):
    single, double = load_digits(), load_digits(dtype=torch.float64)
    for a, b in zip((single.train, single.val, single.test), (double.train, double.val, double.test)):
        assert a.tensors[0].dtype == torch.float32 and b.tensors[0].dtype == torch.float64
        assert torch.equal(a.tensors[1], b.tensors[1])
        torch.testing.assert_close(b.tensors[0].float(), a.tensors[0])
    assert single.mean == double.mean and single.std == double.std
    assert load_cifar10(cifar10_root, dtype=torch.float64).train.tensors[0].dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float16, torch.int64, "float64"])
def test_other_dtypes_are_refused(dtype, cifar10_root):
    with pytest.raises(ValueError, match="dtype must be torch.float32 or torch.float64"):
        load_digits(dtype=dtype)
    with pytest.raises(ValueError, match="dtype must be torch.float32 or torch.float64"):
        load_cifar10(cifar10_root, dtype=dtype)
