"""A small, readable training loop that later chapters extend rather than copy.

``fit`` = for each epoch: ``train_one_epoch`` then ``evaluate`` on the validation data, one
row of metrics appended to a :class:`History`, then every callback's ``on_epoch_end``.
Chapters add behaviour through callbacks (early stopping, logging, schedules) instead of
writing another loop.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import metrics
from .device import pick_device
from .distributed import world

__all__ = ["Callback", "History", "train_one_epoch", "evaluate", "fit", "load_checkpoint"]

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
    if not torch.cuda.is_bf16_supported():
        raise ValueError(f"amp=True (bf16 mixed precision) needs a GPU with bfloat16 support; "
                         f"{torch.cuda.get_device_name(device)} has none")
    return torch.autocast("cuda", dtype=torch.bfloat16)


def _resolve_speed_switches(device: torch.device, amp, channels_last, cudnn_benchmark, compile):
    """Turn ``None`` (the per-device default) into a choice and refuse what cannot work.

    Defaults: on CUDA bf16 autocast (where the GPU has bf16), channels-last and cuDNN autotuning
    (unless cuDNN was told to be deterministic); on other devices all off. ``compile`` is
    never on by default: compiling takes tens of seconds that short runs do not win back.
    """
    cuda = device.type == "cuda"
    for name, value in (("amp", amp), ("channels_last", channels_last),
                        ("cudnn_benchmark", cudnn_benchmark), ("compile", compile)):
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{name} must be True, False or None, got {value!r}")
    if amp is None:
        amp = cuda and torch.cuda.is_bf16_supported()
    if channels_last is None:
        channels_last = cuda
    if cudnn_benchmark is None:
        cudnn_benchmark = cuda and not torch.backends.cudnn.deterministic
    elif cudnn_benchmark and not cuda:
        raise ValueError(f"cudnn_benchmark=True needs a CUDA device, got {device}")
    if compile:
        _check_compile(device)
    _autocast(device, amp)  # fail before the first epoch, not inside it
    return amp, channels_last, cudnn_benchmark, bool(compile)


def _check_compile(device: torch.device) -> None:
    """``torch.compile`` where it can work, else a message that says why not."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise ValueError("compile=True: torch.compile is not supported on this Python/platform")
    if device.type == "mps":
        raise ValueError("compile=True: torch.compile's default backend does not support MPS")
    if device.type == "cpu":
        compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
        if not compiler:
            raise ValueError("compile=True on the CPU needs a C++ compiler (g++ or clang++, or $CXX); "
                             "none was found")


def _run_epoch(model, loader, device, loss_fn, topk, optimizer=None, amp=False, bar=None,
               after_step=None, channels_last=False):
    """One pass over ``loader``; trains when an optimizer is given. Returns mean metrics.
    ``after_step()``, if given, is called after every optimizer step.

    Sums stay on the device and are read once at the end, so a GPU is not made to wait for
    the host after every batch (unless a progress bar asks for the running loss). Under
    ``torch.distributed`` the sums are added over all processes, so every process returns the
    metrics of all the data.
    """
    n = torch.zeros((), dtype=torch.long, device=device)
    # float64 sums (MPS has no float64): the epoch's mean does not round the per-batch losses
    loss_sum = torch.zeros((), dtype=torch.float32 if torch.device(device).type == "mps" else torch.float64,
                           device=device)
    hits = {k: torch.zeros((), dtype=torch.long, device=device) for k in topk}
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    checked = False
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if x.ndim == 4:
            x = x.contiguous(memory_format=memory_format)
        if not checked and (y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool):
            raise TypeError(f"labels must be class indices, an integer tensor [B]; the loader gave "
                            f"{y.dtype} of shape {tuple(y.shape)} (float labels: convert with y.long())")
        with _autocast(device, amp):
            try:
                logits = model(x)  # [B, C]
            except RuntimeError as exc:
                if not checked:  # the first batch: most likely inputs the model was not built for
                    exc.add_note(f"cvlib.train: the first batch was {x.dtype} of shape {tuple(x.shape)} on "
                                 f"{x.device}; does the model take inputs of that shape, dtype and device?")
                raise
            if not checked and (logits.ndim != 2 or logits.shape[0] != len(y)):
                raise ValueError(f"the model must return logits [B, C] for a batch of {len(y)}; it returned "
                                 f"shape {tuple(logits.shape)}")
            loss = loss_fn(logits, y)  # mean over the batch
        checked = True
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
        with torch.no_grad():
            # [B], topk_correct's rule, unchecked; bf16/fp16 logits are compared in float32
            rivals = metrics.rivals(metrics.full_precision(logits), y)
            for k in topk:
                hits[k] += (rivals < k).sum()
            loss_sum += loss.detach().to(loss_sum.dtype) * len(y)
        n += len(y)
        if bar is not None and not bar.disable:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss_sum) / int(n):.4f}")
    if world()[1] > 1:
        sums = torch.stack([n.double(), loss_sum.double(), *(hits[k].double() for k in topk)])
        torch.distributed.all_reduce(sums)
        n, loss_sum = sums[0].long(), sums[1]
        hits = {k: sums[2 + i].long() for i, k in enumerate(topk)}
    n = int(n)
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
    channels_last: bool = False,
) -> dict[str, float]:
    """Train for one pass over ``loader`` (batches of ``x[B, ...]``, ``y[B]`` int64).

    Returns mean ``loss`` and ``top{k}_err`` for each k, averaged over the epoch *while the
    model changes* (the usual running estimate, not a re-evaluation at the end).
    ``after_step()``, if given, is called after every optimizer step (e.g. a per-step schedule).
    ``channels_last`` converts 4-d batches to that memory format (the model should match).
    """
    model.train()
    return _run_epoch(model, loader, device, loss_fn, _check_topk(topk), optimizer, amp, bar,
                      after_step, channels_last)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    loss_fn: LossFn = F.cross_entropy,
    topk: Sequence[int] = (1,),
    amp: bool = False,
    channels_last: bool = False,
) -> dict[str, float]:
    """Mean ``loss`` and ``top{k}_err`` of ``model`` in eval mode over all of ``loader``
    (over every process's share of it under ``torch.distributed``)."""
    model.eval()
    return _run_epoch(model, loader, device, loss_fn, _check_topk(topk), None, amp,
                      channels_last=channels_last)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable,
    *,
    epochs: int,
    val_loader: Iterable | None = None,
    loss_fn: LossFn = F.cross_entropy,
    device: str | torch.device | None = None,
    topk: Sequence[int] = (1,),
    amp: bool | None = None,
    channels_last: bool | None = None,
    cudnn_benchmark: bool | None = None,
    compile: bool = False,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_interval: str = "epoch",
    callbacks: Sequence[Callback] = (),
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` for up to ``epochs`` epochs and return its :class:`History`.

    Each row holds ``epoch``, ``train_loss``, ``train_top{k}_err`` and, with a
    ``val_loader``, ``val_loss`` and ``val_top{k}_err``, plus ``lr`` (of the epoch's last
    optimizer step, first param group) and ``seconds``.

    Loaders yield ``(x[B, ...], y[B])``: a ``DataLoader`` or a :class:`cvlib.loaders.DeviceLoader`
    (data kept on the GPU). A loader's ``set_epoch(epoch)`` (or its sampler's, as with
    ``DistributedSampler``) is called before each epoch.

    Under ``torch.distributed`` (see :mod:`cvlib.distributed`; start with ``torchrun``) the same
    call trains data-parallel: the model is wrapped in ``DistributedDataParallel``, metrics are
    averaged over all processes (so every process sees the same history and callbacks decide
    alike), and only rank 0 prints and writes the checkpoint.

    Args:
        device: where to train; ``None`` asks :func:`cvlib.device.pick_device`. The model is
            moved there; batches are moved as they arrive.
        amp: bf16 autocast; ``None`` = on for a CUDA GPU with bf16, off elsewhere. ``True``
            off CUDA is an error, not a silent no-op.
        channels_last: model and 4-d batches in ``torch.channels_last`` memory format (faster
            convolutions on tensor-core GPUs); ``None`` = on CUDA only.
        cudnn_benchmark: let cuDNN time its algorithms and keep the fastest; ``None`` = on CUDA
            unless ``torch.backends.cudnn.deterministic`` (see ``seed_everything``); ``True``
            off CUDA is an error. The global flag is restored afterwards.
        compile: train a ``torch.compile``-d model (an error where torch.compile cannot run).
        scheduler: a ``torch.optim.lr_scheduler`` schedule. ``ReduceLROnPlateau`` is stepped
            once per epoch with that epoch's ``val_loss`` (so it needs a ``val_loader``).
        scheduler_interval: ``"epoch"`` steps any other scheduler once per epoch, after
            validation; ``"step"`` steps it after every optimizer step (warm-up, one-cycle).
        callbacks: objects with ``on_epoch_end``/``on_train_end`` (see :class:`Callback`);
            training stops after the first epoch at which any of them returns True.
        checkpoint: file written after every epoch (atomically, by rank 0 only) with the
            model's and optimizer's (and scheduler's) state and the history; see
            :func:`load_checkpoint`.
        progress: show a progress bar (tqdm) over batches, with the epoch's metrics.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    if trainable and not trainable & {id(p) for group in optimizer.param_groups for p in group["params"]}:
        raise ValueError("the optimizer holds none of the model's trainable parameters (was it made for "
                         "another model, or before the model was rebuilt?): fit would train nothing")
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
    rank, world_size = world()
    main = rank == 0
    progress = progress and main
    if device is None and world_size > 1 and torch.cuda.is_available():
        device = f"cuda:{torch.cuda.current_device()}"  # cvlib.distributed.setup set it per process
    device = pick_device(device, verbose=progress)  # also checks an explicit device exists
    amp, channels_last, benchmark, compile = _resolve_speed_switches(
        device, amp, channels_last, cudnn_benchmark, compile)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    train_net = eval_net = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        if not isinstance(model, DistributedDataParallel):
            ids = [device.index if device.index is not None else torch.cuda.current_device()] \
                if device.type == "cuda" else None
            train_net = DistributedDataParallel(model, device_ids=ids)
        eval_net = getattr(model, "module", model)  # each rank evaluates its share, no collectives
    if compile:
        train_net, eval_net = torch.compile(train_net), torch.compile(eval_net)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    history = History()
    old_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = benchmark if device.type == "cuda" else old_benchmark
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            _set_epoch(train_loader, epoch)
            bar = tqdm(total=len(train_loader), desc=f"epoch {epoch}/{epochs}", leave=False,
                       disable=not progress)
            with bar:
                train = train_one_epoch(train_net, train_loader, optimizer, device, loss_fn=loss_fn,
                                        topk=topk, amp=amp, bar=bar, after_step=after_step,
                                        channels_last=channels_last)
            if world_size > 1:  # BatchNorm statistics of the last step differ per rank: use rank 0's,
                for buffer in model.buffers():  # as DDP does before every training forward
                    torch.distributed.broadcast(buffer, src=0)
            row: dict[str, float] = {"epoch": epoch, **{f"train_{k}": v for k, v in train.items()}}
            if val_loader is not None:
                val = evaluate(eval_net, val_loader, device, loss_fn=loss_fn, topk=topk, amp=amp,
                               channels_last=channels_last)
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
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, scheduler, history, main)
            stop = [type(cb).__name__ for cb in callbacks if cb.on_epoch_end(epoch, row, model)]
            if stop:
                history.stopped_by = stop[0]
                break
    finally:
        torch.backends.cudnn.benchmark = old_benchmark
        for cb in callbacks:
            cb.on_train_end(history, model)
    return history


def _set_epoch(loader, epoch: int) -> None:
    """Tell a loader (or its sampler) which epoch starts, so shuffling differs per epoch and
    agrees across data-parallel processes."""
    for obj in (loader, getattr(loader, "sampler", None)):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def _save_checkpoint(path: Path, model, optimizer, scheduler, history: History, main: bool) -> None:
    """Rank 0 writes ``path`` atomically (a temporary file renamed over it, so a crash never
    leaves a half-written checkpoint); every process waits until it is written."""
    if main:
        state = {"epoch": len(history), "model": getattr(model, "module", model).state_dict(),
                 "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict() if scheduler is not None else None,
                 "history": history.rows}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    if world()[1] > 1:
        torch.distributed.barrier()


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler=None, *, map_location: str | torch.device = "cpu") -> History:
    """Restore what :func:`fit` saved with ``checkpoint=path`` into ``model`` (and ``optimizer``,
    ``scheduler`` when given); returns the :class:`History` up to that epoch. Continue with
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
            raise ValueError(f"{path} holds no scheduler state (fit was run without a scheduler)")
        scheduler.load_state_dict(state["scheduler"])
    history = History()
    for row in state["history"]:
        history.append(row)
    return history
