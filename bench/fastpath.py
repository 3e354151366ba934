"""The GPU fast path, one switch at a time: seconds per epoch of the same training run.

    python bench/fastpath.py --device cuda           # 50,000 CIFAR-shaped images, batch 512
    python bench/fastpath.py --device cpu --quick     # a smoke test

Each row adds one switch of ``cvlib.train.fit`` / ``cvlib.loaders`` to the row above and
trains the same small BatchNorm network for a few epochs on synthetic CIFAR-shaped data (the
speed does not depend on the pixel values; no dataset is downloaded):

1. ``DataLoader`` with worker processes doing random crop + flip per image (torchvision v2),
   fp32, contiguous memory, no cuDNN autotuning: the usual starting point;
2. the data kept on the device (``DeviceLoader``), crop + flip per batch on the device;
3. bf16 autocast; 4. channels-last memory format; 5. cuDNN autotuning; 6. ``torch.compile``.

The time of an epoch is the median over the epochs after the first (which pays for
autotuning and compilation; compilation time is reported on its own). Speed-ups are ratios
against row 1 measured in the same run. Switches that need CUDA are skipped on the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import table  # noqa: E402
from bench.loader import AugmentedImages  # noqa: E402  (crop + flip per image, transforms.v2)
from cvlib.loaders import CropFlip, DeviceLoader  # noqa: E402
from cvlib.train import fit  # noqa: E402

STEPS = [  # name, switches added to the previous row, needs CUDA
    ("DataLoader + workers, fp32 (baseline)", {}, False),
    ("+ data and augmentation on the device", {"resident": True}, False),
    ("+ bf16 autocast", {"amp": True}, True),
    ("+ channels-last", {"channels_last": True}, False),
    ("+ cuDNN autotuning", {"cudnn_benchmark": True}, True),
    ("+ torch.compile", {"compile": True}, False),
]


def cifar_net(width: int = 64) -> nn.Module:
    """Four conv-BN-GELU blocks and three max-pools: ``[N, 3, 32, 32] -> [N, 10]``."""
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU()]
    return nn.Sequential(*block(3, width), *block(width, 2 * width), nn.MaxPool2d(2),
                         *block(2 * width, 4 * width), nn.MaxPool2d(2), *block(4 * width, 4 * width),
                         nn.MaxPool2d(2), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4 * width, 10))


def _epoch_seconds(device: torch.device, images, labels, switches: dict, *, batch_size: int, width: int,
                   epochs: int, workers: int) -> dict:
    torch.manual_seed(0)
    model = cifar_net(width)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    if switches.get("resident"):
        loader = DeviceLoader((images, labels), batch_size, device=device, shuffle=True, drop_last=True,
                              transform=CropFlip(4), channels_last=switches.get("channels_last", False))
    else:
        loader = DataLoader(AugmentedImages(images, labels), batch_size=batch_size, shuffle=True,
                            drop_last=True, num_workers=workers, pin_memory=device.type == "cuda",
                            persistent_workers=workers > 0)
    start = time.perf_counter()
    history = fit(model, opt, loader, epochs=epochs, device=device, progress=False,
                  loss_fn=lambda out, y: F.cross_entropy(out, y, label_smoothing=0.2),
                  amp=switches.get("amp", False), channels_last=switches.get("channels_last", False),
                  cudnn_benchmark=switches.get("cudnn_benchmark", False) if device.type == "cuda" else None,
                  compile=switches.get("compile", False))
    total = time.perf_counter() - start
    seconds = history["seconds"]
    steady = statistics.median(seconds[1:])
    return {"seconds_per_epoch": steady, "first_epoch_seconds": seconds[0], "total_seconds": total,
            "images_per_second": len(loader) * batch_size / steady, "steps_per_epoch": len(loader)}


def run(device: str = "cuda", *, quick: bool = False, compile_on_cpu: bool = False,
        verbose: bool = False) -> dict:
    """Time every row of :data:`STEPS` that can run on ``device``; returns the rows."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    n, batch_size, width, epochs = (512, 128, 8, 2) if quick else ((50_000, 512, 64, 3) if cuda
                                                                       else (10_000, 256, 32, 3))
    workers = min(8, os.cpu_count() or 1)
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    switches, rows, base = {}, [], None
    for name, added, needs_cuda in STEPS:
        switches = {**switches, **added}
        if needs_cuda and not cuda:
            rows.append({"step": name, "skipped": "CUDA only"})
            continue
        if added.get("compile") and not cuda and not compile_on_cpu:
            rows.append({"step": name, "skipped": "off on CPU (--compile-on-cpu to time it)"})
            continue
        active = {k: v for k, v in switches.items() if not (k in ("amp", "cudnn_benchmark") and not cuda)}
        row = {"step": name, **_epoch_seconds(device, images, labels, active, batch_size=batch_size,
                                              width=width, epochs=epochs, workers=workers)}
        base = base or row["seconds_per_epoch"]
        row["speedup_vs_baseline"] = base / row["seconds_per_epoch"]
        rows.append(row)
        if verbose:
            print(f"{name}: {row['seconds_per_epoch']:.3f} s/epoch, {row['speedup_vs_baseline']:.2f}x, "
                  f"first epoch {row['first_epoch_seconds']:.2f} s", flush=True)
        if cuda:
            torch.cuda.empty_cache()
    return {"device": str(device), "images": n, "batch_size": batch_size, "width": width, "epochs": epochs,
            "workers": workers, "rows": rows}


def markdown(result: dict) -> str:
    rows = [[r["step"], r["skipped"], "", "", ""] if "skipped" in r else
            [r["step"], f"{r['seconds_per_epoch']:.3f}", f"{r['images_per_second']:,.0f}",
             f"{r['speedup_vs_baseline']:.2f}x", f"{r['first_epoch_seconds']:.2f}"] for r in result["rows"]]
    return (f"{result['images']} CIFAR-shaped images, batch {result['batch_size']}, width {result['width']}, "
            f"{result['epochs']} epochs per row (median of epochs 2..), DataLoader workers {result['workers']}\n\n"
            + table(["step", "s / epoch", "images / s", "speed-up vs baseline", "first epoch s"], rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--compile-on-cpu", action="store_true")
    args = p.parse_args()
    print(markdown(run(args.device, quick=args.quick, compile_on_cpu=args.compile_on_cpu, verbose=True)))


if __name__ == "__main__":
    main()
