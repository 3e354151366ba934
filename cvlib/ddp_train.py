"""Train MiniAlexNet data-parallel: the script chapter 04 runs with ``torchrun``.

    torchrun --standalone --nproc_per_node=2 -m cvlib.ddp_train --device cpu      # 2 CPU processes (gloo)
    torchrun --standalone --nproc_per_node=8 -m cvlib.ddp_train --data cifar10 --cifar-root ~/data
    python -m cvlib.ddp_train                                                      # one process

Every process loads the data, keeps it on its device (:class:`cvlib.loaders.DeviceLoader`) and
trains on its ``1/world_size`` share of every epoch; :func:`cvlib.train.fit` averages gradients
(DDP) and metrics over the processes. Only rank 0 prints, writes ``--checkpoint`` and ``--out``.
``--batch-size`` is per process: the step sees ``batch_size * world_size`` samples.

The defaults are chapter 04's MiniAlexNet settings for the dataset (its ``CFG``: digits at the
``"cpu"`` scale, CIFAR-10 at the ``"gpu"`` scale). On the digits they are the chapter's baseline
(no dropout, no augmentation: in its short runs both only slowed training there); on CIFAR-10,
dropout 0.5 and random crops (4 pixels of padding) with horizontal flips. The last, incomplete
batch of every epoch is dropped, so that ``N`` processes with ``--batch-size B`` take the steps
of one process with ``--batch-size N*B``: the same samples in every step, the same averaged
gradient up to float rounding (without dropout and augmentation, whose random numbers each
process draws for itself).

``--dtype`` is the floating-point type of the data and of the model's initial weights (float32 by
default, the fast path; chapter 04 passes ``--dtype float64`` at its CPU scale, like every CPU-scale
experiment of the book: see :func:`cvlib.device.experiment_dtype`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

from .alexnet import MiniAlexNet
from .data import load_cifar10, load_digits
from .device import seed_everything
from .distributed import cleanup, setup
from .loaders import CropFlip, make_loader
from .train import Checkpoint, fit

DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Chapter 04's CFG per dataset; None in an argument means "this dataset's default".
DEFAULTS = {
    "digits": dict(epochs=4, batch_size=32, lr=0.02, width=8, hidden=128, dropout=0.0, pad=0, flip=False),
    "cifar10": dict(epochs=30, batch_size=128, lr=0.01, width=64, hidden=1024, dropout=0.5, pad=4, flip=True),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cvlib.ddp_train", description=__doc__.split("\n")[0],
                                epilog="Defaults marked digits/cifar10 depend on --data (chapter 04's settings).")
    p.add_argument("--data", choices=("digits", "cifar10"), default="digits")
    p.add_argument("--cifar-root", default=None, help="folder holding cifar-10-batches-py (with --data cifar10)")
    p.add_argument("--epochs", type=int, default=None, help="default: digits 4, cifar10 30")
    p.add_argument("--batch-size", type=int, default=None, help="per process; default: digits 32, cifar10 128")
    p.add_argument("--lr", type=float, default=None,
                   help="SGD learning rate (momentum 0.9, weight decay 5e-4); default: digits 0.02, cifar10 0.01")
    p.add_argument("--width", type=int, default=None, help="channels of conv1; default: digits 8, cifar10 64")
    p.add_argument("--hidden", type=int, default=None, help="units of fc6 and fc7; default: digits 128, cifar10 1024")
    p.add_argument("--dropout", type=float, default=None,
                   help="dropout after fc6 and fc7, 0 switches it off; default: digits 0, cifar10 0.5")
    p.add_argument("--pad", type=int, default=None,
                   help="augmentation: pad by this many pixels and take a random crop of the original size "
                        "(cifar10 also flips); 0 switches augmentation off; default: digits 0, cifar10 4")
    p.add_argument("--device", default=None, help="cpu, or cuda (one GPU per process; the default when there is one)")
    p.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="data and initial weights; float64 makes the CPU results independent of the CPU "
                        "(cvlib.device.experiment_dtype)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, help="file written by rank 0 after every epoch")
    p.add_argument("--out", default=None, help="JSON file with the history, written by rank 0")
    args = p.parse_args(argv)
    if args.data == "cifar10" and not args.cifar_root:
        p.error("--data cifar10 needs --cifar-root")
    defaults = DEFAULTS[args.data]
    for name in ("epochs", "batch_size", "lr", "width", "hidden", "dropout", "pad"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    args.flip = defaults["flip"]
    for name in ("epochs", "batch_size", "width", "hidden"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.pad < 0:
        p.error("--pad must be at least 0")
    if not 0 <= args.dropout < 1:
        p.error("--dropout must be in [0, 1)")
    if args.lr <= 0:
        p.error("--lr must be positive")
    return args


def torchrun(argv: list[str], *, nproc_per_node: int = 2) -> str:
    """Run this script under ``torchrun --standalone --nproc_per_node=N`` in a new process (one
    thread per process) and return what it printed; a failure raises ``RuntimeError`` with its
    output."""
    if isinstance(nproc_per_node, bool) or not isinstance(nproc_per_node, int) or nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be a positive int, got {nproc_per_node!r}")
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          f"--nproc_per_node={nproc_per_node}", "-m", "cvlib.ddp_train", *argv],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if run.returncode != 0:
        raise RuntimeError(f"torchrun failed:\n{run.stdout}\n{run.stderr[-3000:]}")
    return run.stdout


def main(argv=None) -> int:
    args = parse_args(argv)
    dtype = DTYPES[args.dtype]
    info = setup(device=args.device)
    previous_dtype = torch.get_default_dtype()  # main() may run inside a notebook's kernel: restored below
    try:
        if dtype == torch.float64 and info.device.type == "mps":
            raise SystemExit("--dtype float64: MPS has no float64; use --device cpu or --dtype float32")
        torch.set_default_dtype(dtype)  # the model below draws its initial weights in dtype
        seed_everything(args.seed, deterministic=info.device.type != "cuda")  # same init on every rank
        if args.data == "digits":
            splits = load_digits(seed=args.seed, dtype=dtype)
        else:
            splits = load_cifar10(args.cifar_root, seed=args.seed, dtype=dtype)
        channels = splits.train.tensors[0].shape[1]
        # The padded border should look like background: raw pixel 0, normalized.
        blank = torch.tensor([-m / s for m, s in zip(splits.mean, splits.std)])
        augment = CropFlip(args.pad, flip=args.flip, fill=blank) if args.pad else None
        train = make_loader(splits.train, args.batch_size, device=info.device, shuffle=True, drop_last=True,
                            transform=augment, seed=args.seed, verbose=info.is_main)
        if len(train) == 0:
            raise SystemExit(f"--batch-size {args.batch_size} x {info.world_size} processes is larger than "
                             f"the {len(splits.train)} training images")
        val = make_loader(splits.val, 256, device=info.device, verbose=False)
        model = MiniAlexNet(channels, len(splits.classes), width=args.width, hidden=args.hidden,
                            dropout=args.dropout)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
        if info.is_main:
            print(f"global batch {args.batch_size * info.world_size} = {info.world_size} x {args.batch_size}, "
                  f"{len(train)} steps per epoch, {args.dtype}")
        history = fit(model, optimizer, train, val_loader=val, epochs=args.epochs, device=info.device,
                      callbacks=[Checkpoint(args.checkpoint)] if args.checkpoint else [], progress=False)
        if info.is_main:
            print(history.table(["epoch", "train_loss", "val_loss", "val_top1_err"]))
            if args.out:
                with open(args.out, "w") as f:
                    json.dump({"world_size": info.world_size, "history": history.rows}, f, indent=1)
    finally:
        torch.set_default_dtype(previous_dtype)
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
