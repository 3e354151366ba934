"""One process of the two-process test in test_distributed.py (started by torchrun).

Usage: torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py OUT_DIR

1. One fit() step of a BatchNorm-free net on this rank's half of a fixed batch; its weights
   afterwards go to OUT_DIR/step_rank{r}.pt (the test compares them with one single-process
   step on the whole batch).
2. Three epochs of SmallCNN (BatchNorm) with shuffling and on-device augmentation, checkpointed
   by fit(); its state afterwards goes to OUT_DIR/train_rank{r}.pt and its history to
   OUT_DIR/history_rank{r}.json (the test checks the replicas are identical).
"""

import json
import sys
from pathlib import Path

import torch
from torch import nn

from cvlib.distributed import cleanup, setup
from cvlib.loaders import CropFlip, DeviceLoader
from cvlib.models import SmallCNN
from cvlib.train import Checkpoint, fit

BATCH = 16  # per process


def plain_net() -> nn.Module:
    """No BatchNorm: a step on two halves then equals a step on the whole batch."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))


def fixed_batch(n: int):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    info = setup(device="cpu")
    x, y = fixed_batch(BATCH * info.world_size)
    model = plain_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fit(model, opt, DeviceLoader((x, y), BATCH), epochs=1, device="cpu", progress=False)
    torch.save(model.state_dict(), out / f"step_rank{info.rank}.pt")

    torch.manual_seed(0)
    model = SmallCNN(width=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    xs, ys = fixed_batch(96)
    train = DeviceLoader((xs, ys), BATCH, shuffle=True, transform=CropFlip(1), seed=3)
    val = DeviceLoader(fixed_batch(37), 8)  # 37: the two ranks get 19 and 18 samples
    history = fit(model, opt, train, val_loader=val, epochs=3, device="cpu", progress=True,
                  callbacks=[Checkpoint(out / "checkpoint.pt")])
    torch.save(model.state_dict(), out / f"train_rank{info.rank}.pt")
    (out / f"history_rank{info.rank}.json").write_text(json.dumps(history.rows))
    cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
