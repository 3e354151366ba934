"""Fixtures shared by the tests: a CIFAR-10-format folder written by the tests.

The notebook kernels' CPU code path is set by the ``cvcourse.numerics`` plugin (see
pyproject.toml), for every pytest invocation, not here.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import CIFAR_CLASSES

# Crafted submissions are notebook cells, not tests (names like lr_range_test.py match pytest's
# default file pattern).
collect_ignore = ["submissions"]

# The tests' models and tensors are tiny: a second intra-op thread only adds synchronisation,
# which on a loaded 2-core machine makes each operation up to ~100x slower. (The notebooks that
# run tiny models set the same in their first cell; nbval runs them in their own kernels.)
torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pyproject.toml): one pytest-xdist worker per usable CPU, plus one. Much of the
    suite waits rather than computes (kernels starting, sandboxed submissions timing out, a
    browser, nested commands): with one worker per core, the 2-core CI machine's CPUs were busy
    58 % of the test command's time (679 s); with one more, 61 % (642 s); two per core took 674 s
    (the run-to-run spread there is about 7 %)."""
    return len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) + 1


def _write_pickle(path: Path, obj) -> str:
    path.write_bytes(pickle.dumps(obj))
    return hashlib.md5(path.read_bytes()).hexdigest()
@pytest.fixture
def cifar10_root(tmp_path, monkeypatch) -> Path:
    """A tiny dataset in CIFAR-10's on-disk format (5 train batches, 1 test batch, meta).

    The files are real CIFAR-format pickles, read by the real ``torchvision.datasets.CIFAR10``;
    only the MD5 sums torchvision checks are pointed at these files instead of the real ones.
    Per batch: 20 images, two of each class; pixel values encode (batch, index) so tests can
    check that nothing is shuffled or lost.
    """
    from torchvision.datasets import CIFAR10

    folder = tmp_path / CIFAR10.base_folder
    folder.mkdir()
    rng = np.random.default_rng(0)

    def batch(name: str, seed_value: int) -> list[str]:
        labels = [i % 10 for i in range(20)]
        data = rng.integers(0, 256, size=(20, 3 * 32 * 32), dtype=np.uint8)
        data[:, 0] = seed_value  # first red pixel identifies the batch
        return [name, _write_pickle(folder / name, {"batch_label": name, "labels": labels,
                                                     "data": data, "filenames": [b"x"] * 20})]

    train_list = [batch(f"data_batch_{i}", i) for i in range(1, 6)]
    test_list = [batch("test_batch", 0)]
    meta_md5 = _write_pickle(folder / "batches.meta",
                             {"label_names": CIFAR_CLASSES, "num_cases_per_batch": 20})
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", test_list)
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": meta_md5})
    return tmp_path

