"""The callbacks of :func:`cvlib.train.fit`: what a training run does besides training.

``fit`` calls each callback's hooks in the order of its ``callbacks`` list (see :class:`Callback`):
``on_train_start(run)`` once, then per epoch ``on_epoch_start(epoch)``, ``on_step_end(loss)``
after every optimizer step and ``on_epoch_end(epoch, metrics, model)`` (True stops training),
and ``on_train_end(history, model)`` however training ends.

* :class:`LRSchedule`: a ``torch.optim.lr_scheduler`` schedule stepped per epoch or per step;
* :class:`Checkpoint`: the run's state written after every epoch; :func:`load_checkpoint` reads it;
* :class:`ProgressBar`: a tqdm bar over the batches and one printed line per epoch;
* :class:`History`: the per-epoch rows of metrics that ``fit`` returns.

Early stopping is :class:`cvlib.early_stopping.EarlyStopping` (chapter 02).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .distributed import world

__all__ = ["Callback", "Run", "LRSchedule", "Checkpoint", "load_checkpoint", "ProgressBar", "History"]


class Callback:
    """Hook into :func:`cvlib.train.fit`. Override what you need; every method defaults to doing nothing."""

    def on_train_start(self, run: "Run") -> None:
        """Called once before the first epoch with the whole :class:`Run`; raise to refuse it."""

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each epoch (counted from 1)."""

    def on_step_end(self, loss: Tensor) -> None:
        """Called after every optimizer step with the batch's mean loss (a detached 0-d tensor
        on the device: reading it, ``float(loss)``, makes a GPU wait)."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool | None:
        """Called after each epoch with that epoch's row of metrics; return True to stop."""
        return None

    def on_train_end(self, history: "History", model: nn.Module) -> None:
        """Called once when training ends, whichever way it ends."""


@dataclass
class Run:
    """What one call of :func:`cvlib.train.fit` trains, for callbacks that need more than a row of metrics."""

    model: nn.Module  # the caller's model (not a DDP or compiled wrapper)
    optimizer: torch.optim.Optimizer
    train_loader: Iterable
    val_loader: Iterable | None
    epochs: int
    callbacks: list[Callback]
    history: "History"


class LRSchedule(Callback):
    """Step a ``torch.optim.lr_scheduler`` schedule: after every epoch (``interval="epoch"``, after
    validation) or after every optimizer step (``"step"``: warm-up, one-cycle).
    ``ReduceLROnPlateau`` is stepped once per epoch with that epoch's ``val_loss``, so it needs
    ``interval="epoch"`` and a ``val_loader``."""

    def __init__(self, scheduler, interval: str = "epoch") -> None:
        if not isinstance(scheduler, (torch.optim.lr_scheduler.LRScheduler,
                                      torch.optim.lr_scheduler.ReduceLROnPlateau)):
            raise TypeError(f"scheduler must be a torch.optim.lr_scheduler schedule, got {type(scheduler).__name__}")
        if interval not in ("epoch", "step"):
            raise ValueError(f"interval must be 'epoch' or 'step', got {interval!r}")
        self.plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if self.plateau and interval != "epoch":
            raise ValueError("a ReduceLROnPlateau scheduler needs a val_loader and interval='epoch'")
        self.scheduler, self.interval = scheduler, interval

    def on_train_start(self, run: Run) -> None:
        if self.plateau and run.val_loader is None:
            raise ValueError("a ReduceLROnPlateau scheduler needs a val_loader and interval='epoch'")

    def on_step_end(self, loss: Tensor) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        if self.plateau:
            self.scheduler.step(metrics["val_loss"])
        elif self.interval == "epoch":
            self.scheduler.step()


class Checkpoint(Callback):
    """Write ``path`` after every epoch (atomically, by rank 0 only): the model's and optimizer's
    state, the :class:`LRSchedule`'s scheduler state (put it before this callback), and the
    history. :func:`load_checkpoint` restores it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_train_start(self, run: Run) -> None:
        mine = run.callbacks.index(self)
        schedules = [i for i, cb in enumerate(run.callbacks) if isinstance(cb, LRSchedule)]
        if len(schedules) > 1:
            raise ValueError(f"Checkpoint saves one LRSchedule's state; callbacks hold {len(schedules)}")
        if schedules and schedules[0] > mine:
            raise ValueError("callbacks: put LRSchedule before Checkpoint, so that the checkpoint holds the "
                             "schedule after this epoch's step")
        self.run = run
        self.scheduler = run.callbacks[schedules[0]].scheduler if schedules else None

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        run = self.run
        if world()[0] == 0:
            _save_atomically(self.path, {
                "epoch": len(run.history), "model": getattr(run.model, "module", run.model).state_dict(),
                "optimizer": run.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "history": run.history.rows})
        if world()[1] > 1:
            torch.distributed.barrier()  # every process waits until it is written


def _save_atomically(path: Path, state: dict) -> None:
    """A temporary file renamed over ``path``, so a crash never leaves a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler=None, *, map_location: str | torch.device = "cpu") -> History:
    """Restore what :class:`Checkpoint` saved into ``model`` (and ``optimizer``, ``scheduler``
    when given); returns the :class:`History` up to that epoch. Continue with
    ``fit(..., epochs=remaining)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=map_location, weights_only=True)
    getattr(model, "module", model).load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        if state["scheduler"] is None:
            raise ValueError(f"{path} holds no scheduler state (fit was run without an LRSchedule)")
        scheduler.load_state_dict(state["scheduler"])
    history = History()
    for row in state["history"]:
        history.append(row)
    return history


class ProgressBar(Callback):
    """A tqdm bar over each epoch's batches (with the running mean of the batch losses) and one
    printed line of metrics per epoch; rank 0 only."""

    def on_train_start(self, run: Run) -> None:
        self.enabled, self.total, self.epochs, self.bar = world()[0] == 0, len(run.train_loader), run.epochs, None

    def on_epoch_start(self, epoch: int) -> None:
        if self.enabled:
            self.bar = tqdm(total=self.total, desc=f"epoch {epoch}/{self.epochs}", leave=False)
            self.loss_sum, self.steps = 0.0, 0

    def on_step_end(self, loss: Tensor) -> None:
        if self.bar is not None and not self.bar.disable:
            self.loss_sum, self.steps = self.loss_sum + float(loss), self.steps + 1
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{self.loss_sum / self.steps:.4f}")

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        self.on_train_end(None, model)
        if self.enabled:
            shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("epoch", "seconds"))
            tqdm.write(f"epoch {epoch}/{self.epochs}  {shown}")

    def on_train_end(self, history: History | None, model: nn.Module) -> None:
        if getattr(self, "bar", None) is not None:
            self.bar.close()
            self.bar = None


class History:
    """Per-epoch metrics: ``history.rows[i]`` is a dict for epoch ``i + 1``;
    ``history["val_loss"]`` is one metric as a list over epochs."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.stopped_by: str | None = None  # name of the callback that stopped training

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: str) -> list[float]:
        if not self.rows or key not in self.rows[0]:
            known = sorted(self.rows[0]) if self.rows else []
            raise KeyError(f"no metric {key!r} in history; known: {known}")
        return [row[key] for row in self.rows]

    def table(self, keys: Sequence[str] | None = None, digits: int = 3) -> str:
        """The history as a fixed-width text table (wall-clock columns left out by default,
        so the table is the same on every run)."""
        if not self.rows:
            return "(empty history)"
        keys = list(keys) if keys is not None else [k for k in self.rows[0] if k != "seconds"]
        width = max(len(k) for k in keys) + 2
        lines = ["".join(k.rjust(width) for k in keys)]
        for row in self.rows:
            cells = (str(row[k]) if k == "epoch" else f"{row[k]:.{digits}f}" for k in keys)
            lines.append("".join(c.rjust(width) for c in cells))
        return "\n".join(lines)
