"""A small, readable training loop that later chapters extend rather than copy.

``fit`` = :func:`prepare` the model once (device, speed switches, data-parallel wrapper), then
for each epoch: train on ``train_loader``, evaluate on ``val_loader``, append one row of metrics
to a :class:`History`, and tell every callback. Everything else is a callback
(:mod:`cvlib.callbacks`; the names are importable from here too):

* :class:`LRSchedule`: a ``torch.optim.lr_scheduler`` stepped per epoch or per step;
* :class:`Checkpoint`: the run's state written after every epoch, read back by :func:`load_checkpoint`;
* :class:`ProgressBar`: a tqdm bar over the batches and one printed line per epoch (``progress=True``);
* :class:`cvlib.early_stopping.EarlyStopping`: stop when a metric stops improving.

Chapters add behaviour by writing another callback instead of another loop.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .callbacks import Callback, Checkpoint, History, LRSchedule, ProgressBar, Run, load_checkpoint
from .device import pick_device
from .distributed import world
from .topk import full_precision, rivals

__all__ = ["fit", "prepare", "Prepared", "train_one_epoch", "evaluate",
           # the callbacks (defined in cvlib.callbacks), importable from here with the loop
           "Callback", "Run", "LRSchedule", "Checkpoint", "load_checkpoint", "ProgressBar", "History"]

LossFn = Callable[[Tensor, Tensor], Tensor]


# --- the loop --------------------------------------------------------------------------------

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
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
) -> History:
    """Train ``model`` for up to ``epochs`` epochs and return its :class:`History`.

    Each row holds ``epoch``, ``train_loss``, ``train_top{k}_err`` and, with a ``val_loader``,
    ``val_loss`` and ``val_top{k}_err``, plus ``lr`` (of the epoch's last optimizer step, first
    param group) and ``seconds``.

    Loaders yield ``(x[B, ...], y[B])``: a ``DataLoader`` or a :class:`cvlib.loaders.DeviceLoader`
    (data kept on the GPU). A loader's ``set_epoch(epoch)`` (or its sampler's, as with
    ``DistributedSampler``) is called before each epoch.

    Under ``torch.distributed`` (see :mod:`cvlib.distributed`; start with ``torchrun``) the same
    call trains data-parallel: the model is wrapped in ``DistributedDataParallel``, metrics are
    averaged over all processes (so every process sees the same history and callbacks decide
    alike), and only rank 0 prints and writes checkpoints.

    Args:
        device, amp, channels_last, cudnn_benchmark, compile: where and how fast to train; see
            :func:`prepare`.
        callbacks: :class:`Callback` objects (or any with ``on_epoch_end`` and ``on_train_end``),
            told in this order: schedules (``LRSchedule(scheduler, interval="epoch" | "step")``),
            checkpoints (``Checkpoint(path)``), early stopping, your own. Training stops after
            the first epoch at which any ``on_epoch_end`` returns True.
        progress: put a :class:`ProgressBar` first in ``callbacks`` (rank 0 only).
    """
    _check_fit_args(model, optimizer, epochs)
    topk = _check_topk(topk)
    prep = prepare(model, device, amp=amp, channels_last=channels_last, cudnn_benchmark=cudnn_benchmark,
                   compile=compile, verbose=progress and world()[0] == 0)
    callbacks = [ProgressBar()] * bool(progress) + list(callbacks)
    run = Run(model, optimizer, train_loader, val_loader, epochs, callbacks, History())
    settings = EpochSettings(prep.device, loss_fn, topk, prep.amp, prep.channels_last)
    start_hooks, epoch_hooks, step_hooks = (_hooks(callbacks, name) for name in
                                            ("on_train_start", "on_epoch_start", "on_step_end"))
    last_lr = [optimizer.param_groups[0]["lr"]]

    def after_step(loss: Tensor) -> None:
        last_lr[0] = optimizer.param_groups[0]["lr"]  # the lr this step used, before a schedule moves it
        for hook in step_hooks:
            hook(loss)

    for hook in start_hooks:
        hook(run)  # refuses what cannot work before the first epoch
    try:
        with prep.cudnn_benchmark_flag():
            for epoch in range(1, epochs + 1):
                start = time.perf_counter()
                _set_epoch(train_loader, epoch)
                for hook in epoch_hooks:
                    hook(epoch)
                prep.train_net.train()
                train = _run_epoch(prep.train_net, train_loader, settings, optimizer, after_step)
                prep.sync_buffers()
                row: dict[str, float] = {"epoch": epoch, **{f"train_{k}": v for k, v in train.items()}}
                if val_loader is not None:
                    val = _evaluate(prep.eval_net, val_loader, settings)
                    row.update({f"val_{k}": v for k, v in val.items()})
                row["lr"], row["seconds"] = last_lr[0], time.perf_counter() - start
                run.history.append(row)
                stop = [type(cb).__name__ for cb in callbacks if cb.on_epoch_end(epoch, row, model)]
                if stop:
                    run.history.stopped_by = stop[0]
                    break
    finally:
        for cb in callbacks:
            cb.on_train_end(run.history, model)
    return run.history


def _hooks(callbacks, name: str) -> list[Callable]:
    """The callbacks' ``name`` methods that do something: not :class:`Callback`'s empty default,
    nor missing (an object with only ``on_epoch_end`` and ``on_train_end`` is a callback too)."""
    default = getattr(Callback, name)
    return [getattr(cb, name) for cb in callbacks if getattr(type(cb), name, default) is not default]


def _check_fit_args(model, optimizer, epochs) -> None:
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


def _check_topk(topk: Iterable[int]) -> tuple[int, ...]:
    topk = tuple(topk)
    if not topk or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in topk):
        raise ValueError(f"topk must be a non-empty sequence of positive ints, got {topk!r}")
    return topk


def _set_epoch(loader, epoch: int) -> None:
    """Tell a loader (or its sampler) which epoch starts, so shuffling differs per epoch and
    agrees across data-parallel processes."""
    for obj in (loader, getattr(loader, "sampler", None)):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


# --- one epoch -------------------------------------------------------------------------------

@dataclass(frozen=True)
class EpochSettings:
    """How every batch of an epoch is run: where, with which loss and metrics, and how fast."""

    device: torch.device
    loss_fn: LossFn = F.cross_entropy
    topk: tuple[int, ...] = (1,)
    amp: bool = False
    channels_last: bool = False


def _run_epoch(model, loader, settings: EpochSettings, optimizer=None, after_step=None):
    """One pass over ``loader``; trains when an optimizer is given. Returns mean metrics.
    ``after_step(loss)``, if given, is called after every optimizer step with the batch's
    mean loss (detached, on the device).

    Sums stay on the device and are read once at the end, so a GPU is not made to wait for
    the host after every batch. Under ``torch.distributed`` the sums are added over all
    processes, so every process returns the metrics of all the data.
    """
    device, topk = settings.device, settings.topk
    n = torch.zeros((), dtype=torch.long, device=device)
    # float64 sums (MPS has no float64): the epoch's mean does not round the per-batch losses
    loss_sum = torch.zeros((), dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)
    hits = {k: torch.zeros((), dtype=torch.long, device=device) for k in topk}
    memory_format = torch.channels_last if settings.channels_last else torch.preserve_format
    checked = False
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if x.ndim == 4:
            x = x.contiguous(memory_format=memory_format)
        if not checked and (y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool):
            raise TypeError(f"labels must be class indices, an integer tensor [B]; the loader gave "
                            f"{y.dtype} of shape {tuple(y.shape)} (float labels: convert with y.long())")
        with _autocast(device, settings.amp):
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
            loss = settings.loss_fn(logits, y)  # mean over the batch
        checked = True
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step(loss.detach())
        with torch.no_grad():
            # [B], topk_correct's rule, unchecked; bf16/fp16 logits are compared in float32
            rank = rivals(full_precision(logits), y)
            for k in topk:
                hits[k] += (rank < k).sum()
            loss_sum += loss.detach().to(loss_sum.dtype) * len(y)
        n += len(y)
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
    after_step: Callable[[], None] | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """Train for one pass over ``loader`` (batches of ``x[B, ...]``, ``y[B]`` int64).

    Returns mean ``loss`` and ``top{k}_err`` for each k, averaged over the epoch *while the
    model changes* (the usual running estimate, not a re-evaluation at the end).
    ``after_step()``, if given, is called after every optimizer step (e.g. a weight constraint).
    ``channels_last`` converts 4-d batches to that memory format (the model should match).
    """
    model.train()
    settings = EpochSettings(torch.device(device), loss_fn, _check_topk(topk), amp, channels_last)
    hook = (lambda loss: after_step()) if after_step is not None else None
    return _run_epoch(model, loader, settings, optimizer, hook)


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
    return _evaluate(model, loader, EpochSettings(torch.device(device), loss_fn, _check_topk(topk), amp,
                                                  channels_last))


@torch.no_grad()
def _evaluate(model: nn.Module, loader, settings: EpochSettings) -> dict[str, float]:
    model.eval()
    return _run_epoch(model, loader, settings)


# --- preparation: device, speed switches, data parallel --------------------------------------

@dataclass
class Prepared:
    """What :func:`prepare` returns: the nets to train and evaluate, and how to run them."""

    model: nn.Module      # the caller's model, on ``device`` (and channels-last if asked)
    train_net: nn.Module  # what trains: ``model``, wrapped in DDP across processes, compiled if asked
    eval_net: nn.Module   # what evaluates: ``model`` without DDP (each rank its share), compiled if asked
    device: torch.device
    amp: bool
    channels_last: bool
    cudnn_benchmark: bool

    @contextmanager
    def cudnn_benchmark_flag(self):
        """Set ``torch.backends.cudnn.benchmark`` for the run (on CUDA) and restore it afterwards."""
        old = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.cudnn_benchmark if self.device.type == "cuda" else old
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = old

    def sync_buffers(self) -> None:
        """After a data-parallel epoch the BatchNorm statistics of the last step differ per rank:
        use rank 0's, as DDP does before every training forward."""
        if world()[1] > 1:
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer, src=0)


def prepare(model: nn.Module, device: str | torch.device | None = None, *, amp: bool | None = None,
            channels_last: bool | None = None, cudnn_benchmark: bool | None = None, compile: bool = False,
            verbose: bool = True) -> Prepared:
    """Move ``model`` to ``device`` and decide the speed switches, refusing what cannot work.

    Args:
        device: where to train; ``None`` asks :func:`cvlib.device.pick_device` (under
            ``torch.distributed`` with CUDA: this process's GPU). ``verbose`` prints its choice.
        amp: bf16 autocast; ``None`` = on for a CUDA GPU with bf16, off elsewhere. ``True``
            off CUDA is an error, not a silent no-op.
        channels_last: model and 4-d batches in ``torch.channels_last`` memory format (faster
            convolutions on tensor-core GPUs); ``None`` = on CUDA only.
        cudnn_benchmark: let cuDNN time its algorithms and keep the fastest; ``None`` = on CUDA
            unless ``torch.backends.cudnn.deterministic`` (see ``seed_everything``); ``True``
            off CUDA is an error. :meth:`Prepared.cudnn_benchmark_flag` sets and restores it.
        compile: ``torch.compile`` the nets (an error where torch.compile cannot run). Never on
            by default: compiling takes tens of seconds that short runs do not win back.
    """
    for name, value in (("amp", amp), ("channels_last", channels_last),
                        ("cudnn_benchmark", cudnn_benchmark), ("compile", compile)):
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{name} must be True, False or None, got {value!r}")
    world_size = world()[1]
    if device is None and world_size > 1 and torch.cuda.is_available():
        device = f"cuda:{torch.cuda.current_device()}"  # cvlib.distributed.setup set it per process
    device = pick_device(device, verbose=verbose)  # also checks an explicit device exists
    cuda = device.type == "cuda"
    amp = cuda and torch.cuda.is_bf16_supported() if amp is None else amp
    channels_last = cuda if channels_last is None else channels_last
    if cudnn_benchmark is None:
        cudnn_benchmark = cuda and not torch.backends.cudnn.deterministic
    elif cudnn_benchmark and not cuda:
        raise ValueError(f"cudnn_benchmark=True needs a CUDA device, got {device}")
    if compile:
        _check_compile(device)
    _autocast(device, amp)  # fail before the first epoch, not inside it
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    train_net = eval_net = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        if not isinstance(model, DistributedDataParallel):
            ids = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else None
            train_net = DistributedDataParallel(model, device_ids=ids)
        eval_net = getattr(model, "module", model)  # each rank evaluates its share, no collectives
    if compile:
        train_net, eval_net = torch.compile(train_net), torch.compile(eval_net)
    return Prepared(model, train_net, eval_net, device, amp, channels_last, cudnn_benchmark)


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
