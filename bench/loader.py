"""Batches per second: ``cvlib.loaders.DeviceLoader`` vs ``torch.utils.data.DataLoader``.

Synthetic CIFAR-shaped data (random uint8 images ``[N, 3, 32, 32]``, int64 labels), batch 512,
shuffled, the standard augmentation (random 32 x 32 crop after 4 pixels of zero padding, random
horizontal flip), float32 batches on the device at the end:

* ``DeviceLoader(..., shuffle=True, transform=CropFlip(4))``: the images (as float32 in [0, 1])
  copied to the device once; shuffling, gathering and augmenting per batch on the device.
* ``DataLoader`` over a dataset that augments each uint8 image with ``torchvision.transforms.v2``
  (``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()``), with ``num_workers`` = the usable
  CPU cores (persistent workers) and with 0; each uint8 batch is copied to the device (pinned,
  non-blocking on CUDA) and converted to float32 there.

Each loader runs one warm-up epoch, then ``epochs`` timed epochs (the device synchronized
before the clock stops); the figure is batches per second relative to the DataLoader with
workers.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from bench.common import median, table, timed
from cvlib.loaders import CropFlip, DeviceLoader


class AugmentedImages(Dataset):
    """uint8 images ``[N, C, H, W]`` augmented one at a time, as a decoding dataset would."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.transform = v2.Compose([v2.RandomCrop(images.shape[-1], padding=4), v2.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _epoch(loader, device: torch.device, from_uint8: bool) -> int:
    batches = 0
    for x, y in loader:
        if from_uint8:
            x = x.to(device, non_blocking=True).float().div_(255)
            y = y.to(device, non_blocking=True)
        batches += 1
    return batches


def benchmark(device: str = "cpu", *, images: int | None = None, batch_size: int = 512, epochs: int = 3,
              workers: int | None = None) -> dict:
    device = torch.device(device)
    cuda = device.type == "cuda"
    images = images or (50_000 if cuda else 10_000)
    workers = usable_cpus() if workers is None else workers
    gen = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (images,), generator=gen)
    loaders = {"`DeviceLoader` + `CropFlip(4)`": (
        DeviceLoader((u8.float().div_(255), labels), batch_size, device=device, shuffle=True,
                     transform=CropFlip(4)), False)}
    dataset = AugmentedImages(u8, labels)
    for w in dict.fromkeys((workers, 0)):
        loaders[f"`DataLoader`, v2 per sample, num_workers={w}"] = (
            DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=w, pin_memory=cuda,
                       persistent_workers=w > 0, generator=torch.Generator().manual_seed(0)), True)
    reference = f"`DataLoader`, v2 per sample, num_workers={workers}"
    rows = {}
    for name, (loader, from_uint8) in loaders.items():
        batches = _epoch(loader, device, from_uint8)  # warm-up (starts the workers)
        seconds = [timed(lambda: _epoch(loader, device, from_uint8), device) for _ in range(epochs)]
        rows[name] = {"batches_per_epoch": batches, "epoch_seconds": seconds,
                      "batches_per_s": batches / median(seconds)}

    loaders.clear()  # let persistent workers go
    for row in rows.values():
        row["ratio"] = row["batches_per_s"] / rows[reference]["batches_per_s"]
    return {"device": str(device), "images": images, "batch_size": batch_size, "epochs": epochs,
            "workers": workers, "reference": reference, "loaders": rows}


def markdown(r: dict) -> str:
    rows = [[name, f"{row['batches_per_s']:.1f}",
             f"{row['ratio']:.2f}" + (" (reference)" if name == r["reference"] else "")]
            for name, row in r["loaders"].items()]
    return ("## GPU-resident loader vs DataLoader (batches per second, higher is better)\n\n"
            f"{r['images']} synthetic CIFAR-shaped images, batch {r['batch_size']}, shuffled, random crop "
            f"(padding 4) + horizontal flip, float32 batches on {r['device']}; median of {r['epochs']} epochs "
            "after a warm-up epoch.\n\n" + table(["loader", "batches/s", "ratio to reference"], rows))
