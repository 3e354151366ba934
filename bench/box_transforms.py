"""Throughput of the course's detection augmentation pipeline vs the same pipeline in v2.

    python bench/box_transforms.py [--images 32] [--repeats 5] [--size 300]

Pipeline (both sides): random horizontal flip -> SSD min-IoU crop -> resize to size x size.
cvlib: cvlib.box_transforms; torchvision: transforms.v2 RandomHorizontalFlip, RandomIoUCrop,
Resize, SanitizeBoundingBoxes on tv_tensors. Same fixed batch of images and boxes (the chapter's
photos when scikit-image is installed, random images otherwise), one thread, float images.
Prints images/s for each and the ratio cvlib / v2 (> 1: the course's pipeline is faster).
"""

from __future__ import annotations

import argparse
import time

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvlib import box_transforms as bt


def _batch(num_images: int) -> list[bt.Sample]:
    try:
        photos = list(bt.load_photos().values())
    except ImportError:
        gen = torch.Generator().manual_seed(0)
        photos = [bt.Sample(torch.rand(3, 400, 600, generator=gen),
                            torch.tensor([[50.0, 40, 300, 350], [320, 100, 580, 390]]), torch.tensor([0, 1]))]
    return [photos[i % len(photos)] for i in range(num_images)]


def _images_per_second(run, samples, repeats: int) -> float:
    run(samples[0])  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        for s in samples:
            run(s)
    return repeats * len(samples) / (time.perf_counter() - start)


def benchmark(num_images: int = 32, repeats: int = 5, size: int = 300) -> dict[str, float]:
    """Images/s of both pipelines on the same fixed batch; returns {"cvlib", "torchvision.v2", "ratio"}."""
    samples = _batch(num_images)
    ours = bt.compose(bt.random_horizontal_flip, bt.random_ssd_crop,
                      lambda s, g: bt.resize(s, (size, size)))
    gen = torch.Generator().manual_seed(0)
    theirs = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomIoUCrop(), v2.Resize((size, size)),
                         v2.SanitizeBoundingBoxes()])
    torch.manual_seed(0)  # v2 draws from the global generator

    def run_v2(s: bt.Sample):
        boxes = tv_tensors.BoundingBoxes(s.boxes, format="XYXY", canvas_size=tuple(s.image.shape[-2:]))
        return theirs(tv_tensors.Image(s.image), {"boxes": boxes, "labels": s.labels})

    result = {"cvlib": _images_per_second(lambda s: ours(s, gen), samples, repeats),
              "torchvision.v2": _images_per_second(run_v2, samples, repeats)}
    result["ratio"] = result["cvlib"] / result["torchvision.v2"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    r = benchmark(args.images, args.repeats, args.size)
    print(f"cvlib.box_transforms   {r['cvlib']:8.1f} images/s")
    print(f"torchvision.v2         {r['torchvision.v2']:8.1f} images/s")
    print(f"ratio cvlib / v2       {r['ratio']:8.2f}  (goal: >= 1)")


if __name__ == "__main__":
    main()
