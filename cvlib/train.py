"""A small, readable training loop that later chapters extend rather than copy.

``fit`` = for each epoch: ``train_one_epoch`` then ``evaluate`` on the validation data, one
row of metrics appended to a :class:`History`, then every callback's ``on_epoch_end``.
Chapters add behaviour through callbacks (early stopping, logging, schedules) instead of
writing another loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .device import pick_device
from .metrics import topk_correct

__all__ = ["Callback", "History", "train_one_epoch", "evaluate", "fit"]

LossFn = Callable[[Tensor, Tensor], Tensor]


class Callback:
    """Hook into :func:`fit`. Override what you need; both methods default to doing nothing."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool | None:
        """Called after each epoch with that epoch's row of metrics; return True to stop."""
        return None

    def on_train_end(self, history: "History", model: nn.Module) -> None:
        """Called once when training ends, whichever way it ends."""


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


def _check_topk(topk: Iterable[int]) -> tuple[int, ...]:
    topk = tuple(topk)
    if not topk or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in topk):
        raise ValueError(f"topk must be a non-empty sequence of positive ints, got {topk!r}")
    return topk


def _autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA when asked; asking for it anywhere else is an error."""
    if not amp:
        return nullcontext()
    if device.type != "cuda":
        raise ValueError(f"amp=True (bf16 mixed precision) needs a CUDA device, got {device}")
    return torch.autocast("cuda", dtype=torch.bfloat16)


def _run_epoch(model, loader, device, loss_fn, topk, optimizer=None, amp=False, bar=None,
               after_step=None):
    """One pass over ``loader``; trains when an optimizer is given. Returns mean metrics.
    ``after_step()``, if given, is called after every optimizer step.

    Sums stay on the device and are read once at the end, so a GPU is not made to wait for
    the host after every batch (unless a progress bar asks for the running loss).
    """
    n = 0
    loss_sum = torch.zeros((), device=device)
    hits = {k: torch.zeros((), dtype=torch.long, device=device) for k in topk}
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(x)  # [B, C]
            loss = loss_fn(logits, y)  # mean over the batch
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
        with torch.no_grad():
            logits = logits.float()
            for k in topk:
                hits[k] += topk_correct(logits, y, k).sum()
            loss_sum += loss.detach().float() * len(y)
        n += len(y)
        if bar is not None and not bar.disable:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss_sum) / n:.4f}")
    if n == 0:
        raise ValueError("the data loader yielded no samples")
    return {"loss": float(loss_sum) / n, **{f"top{k}_err": 1 - int(hits[k]) / n for k in topk}}


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    loss_fn: LossFn = F.cross_entropy,
    topk: Sequence[int] = (1,),
    amp: bool = False,
    bar=None,
    after_step: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Train for one pass over ``loader`` (batches of ``x[B, ...]``, ``y[B]`` int64).

    Returns mean ``loss`` and ``top{k}_err`` for each k, averaged over the epoch *while the
    model changes* (the usual running estimate, not a re-evaluation at the end).
    ``after_step()``, if given, is called after every optimizer step (e.g. a per-step schedule).
    """
    model.train()
    return _run_epoch(model, loader, device, loss_fn, _check_topk(topk), optimizer, amp, bar,
                      after_step)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    loss_fn: LossFn = F.cross_entropy,
    topk: Sequence[int] = (1,),
    amp: bool = False,
) -> dict[str, float]:
    """Mean ``loss`` and ``top{k}_err`` of ``model`` in eval mode over all of ``loader``."""
    model.eval()
    return _run_epoch(model, loader, device, loss_fn, _check_topk(topk), None, amp)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: DataLoader,
    *,
    epochs: int,
    val_loader: DataLoader | None = None,
    loss_fn: LossFn = F.cross_entropy,
    device: str | torch.device | None = None,
    topk: Sequence[int] = (1,),
    amp: bool = False,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_interval: str = "epoch",
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
) -> History:
    """Train ``model`` for up to ``epochs`` epochs and return its :class:`History`.

    Each row holds ``epoch``, ``train_loss``, ``train_top{k}_err`` and, with a
    ``val_loader``, ``val_loss`` and ``val_top{k}_err``, plus ``lr`` (of the epoch's last
    optimizer step, first param group) and ``seconds``.

    Args:
        device: where to train; ``None`` asks :func:`cvlib.device.pick_device`. The model is
            moved there; batches are moved as they arrive.
        amp: bf16 autocast on CUDA (an error on other devices, not a silent no-op).
        scheduler: a ``torch.optim.lr_scheduler`` schedule. ``ReduceLROnPlateau`` is stepped
            once per epoch with that epoch's ``val_loss`` (so it needs a ``val_loader``).
        scheduler_interval: ``"epoch"`` steps any other scheduler once per epoch, after
            validation; ``"step"`` steps it after every optimizer step (warm-up, one-cycle).
        callbacks: objects with ``on_epoch_end``/``on_train_end`` (see :class:`Callback`);
            training stops after the first epoch at which any of them returns True.
        progress: show a progress bar (tqdm) over batches, with the epoch's metrics.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau and (val_loader is None or scheduler_interval != "epoch"):
        raise ValueError("a ReduceLROnPlateau scheduler needs a val_loader and scheduler_interval='epoch'")
    per_step = scheduler is not None and scheduler_interval == "step"
    last_lr = [optimizer.param_groups[0]["lr"]]

    def after_step() -> None:
        last_lr[0] = optimizer.param_groups[0]["lr"]  # the lr this step used
        if per_step:
            scheduler.step()
    topk = _check_topk(topk)
    device = pick_device(device, verbose=progress)  # also checks an explicit device exists
    _autocast(device, amp)  # fail before the first epoch, not inside it
    model.to(device)
    history = History()
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            bar = tqdm(total=len(train_loader), desc=f"epoch {epoch}/{epochs}", leave=False,
                       disable=not progress)
            with bar:
                train = train_one_epoch(model, train_loader, optimizer, device, loss_fn=loss_fn,
                                        topk=topk, amp=amp, bar=bar, after_step=after_step)
            row: dict[str, float] = {"epoch": epoch, **{f"train_{k}": v for k, v in train.items()}}
            if val_loader is not None:
                val = evaluate(model, val_loader, device, loss_fn=loss_fn, topk=topk, amp=amp)
                row.update({f"val_{k}": v for k, v in val.items()})
            row["lr"] = last_lr[0]
            if plateau:
                scheduler.step(row["val_loss"])
            elif scheduler is not None and not per_step:
                scheduler.step()
            row["seconds"] = time.perf_counter() - start
            history.append(row)
            if progress:
                shown = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "seconds"))
                tqdm.write(f"epoch {epoch}/{epochs}  {shown}")
            stop = [type(cb).__name__ for cb in callbacks if cb.on_epoch_end(epoch, row, model)]
            if stop:
                history.stopped_by = stop[0]
                break
    finally:
        for cb in callbacks:
            cb.on_train_end(history, model)
    return history
