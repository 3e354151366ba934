"""Data-parallel training with PyTorch's own engine (``torchrun`` + ``DistributedDataParallel``).

Every process holds a full copy of the model and trains on its share of each batch; after
``backward`` the gradients are averaged across processes (an all-reduce), so every replica
takes the same step and the replicas stay identical. That is the modern answer to what
AlexNet did in 2012 by hand: split one model's layers across two GPUs (model parallelism,
see chapter 04).

The same script runs on one process or many::

    torchrun --standalone --nproc_per_node=4 -m cvlib.ddp_train --epochs 10   # 4 GPUs (or CPU processes)
    python -m cvlib.ddp_train --epochs 10                                      # one process

:func:`setup` reads the variables ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``),
joins the process group (NCCL on CUDA, gloo on CPU) and returns the device of this process.
:func:`cvlib.train.fit` notices the process group: it wraps the model in DDP, averages the
metrics over all processes, and logs and checkpoints on rank 0 only.

:func:`communication_per_step` counts what each GPU sends per training step, split the 2012
way (model parallel) and today's way (data parallel).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .device import pick_device

__all__ = ["DistInfo", "setup", "cleanup", "is_main", "world", "Communication", "communication_per_step"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, its ``local_rank`` on
    this machine, and the ``device`` it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the process that logs and saves."""
    return world()[0] == 0


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def setup(backend: str | None = None, *, device: str | torch.device | None = None,
          verbose: bool = True) -> DistInfo:
    """Join the process group that ``torchrun`` describes, or run alone when there is none.

    Args:
        backend: ``"nccl"`` (CUDA only) or ``"gloo"`` (CPU, or CUDA without NCCL); ``None``
            picks NCCL when the device is CUDA, else gloo.
        device: ``None`` gives ``cuda:LOCAL_RANK`` when CUDA is available (one GPU per
            process), else the CPU; ``"cpu"`` forces CPU processes (gloo).
        verbose: rank 0 prints one line with the world size, backend and device.
    Raises:
        RuntimeError: ``LOCAL_RANK`` names a GPU this machine does not have, or NCCL was asked
            for without CUDA.
    """
    if "WORLD_SIZE" not in os.environ:
        chosen = pick_device(device, verbose=verbose)
        return DistInfo(0, 1, 0, chosen)
    rank, world_size, local_rank = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if chosen.type == "cuda":
        if not torch.cuda.is_available() or (chosen.index or 0) >= torch.cuda.device_count():
            raise RuntimeError(f"process {rank} (LOCAL_RANK={local_rank}) wants {chosen}, but this machine "
                               f"has {torch.cuda.device_count()} CUDA device(s); start at most that many "
                               f"processes per machine (torchrun --nproc_per_node)")
        torch.cuda.set_device(chosen)
    backend = backend or ("nccl" if chosen.type == "cuda" else "gloo")
    if backend == "nccl" and chosen.type != "cuda":
        raise RuntimeError("backend 'nccl' needs CUDA devices; use 'gloo' for CPU processes")
    if not dist.is_initialized():
        kwargs = {"device_id": chosen} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
    if verbose and rank == 0:
        print(f"cvlib: {world_size} processes, backend {backend}, rank 0 on {chosen}")
    return DistInfo(rank, world_size, local_rank, chosen)


def cleanup() -> None:
    """Leave the process group (if any); call once at the end of a ``torchrun`` script."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class Communication:
    """Floats each GPU sends per training step (:func:`communication_per_step`). ``crossing``:
    module name -> floats of that module's input per image."""

    crossing: dict[str, int]
    model_parallel: float
    data_parallel: float


def communication_per_step(model: torch.nn.Module, example: torch.Tensor, crossings, *, batch_size: int,
                           world_size: int = 2) -> Communication:
    """How many floats each of ``world_size`` GPUs sends per training step of ``batch_size`` images.

    * **Model parallel** (AlexNet's split): each GPU holds ``1/N`` of every layer's kernels, and
      a module named in ``crossings`` reads the maps of all GPUs, so each GPU sends its ``1/N``
      share of that module's input to each of the other ``N - 1`` forward, and as many gradient
      values backward: ``2 * batch_size * (N - 1) / N * sum(crossing)``.
    * **Data parallel** (DDP): every step one gradient per parameter is all-reduced; a ring
      all-reduce sends ``2 (N - 1) / N`` values per parameter from each GPU, whatever the batch.

    ``example`` is one input ``[1, ...]``; the input sizes are measured with forward pre-hooks,
    in eval mode and without gradients (the model's train/eval flags are restored).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 2:
        raise ValueError(f"world_size must be an int >= 2 (a split needs two GPUs), got {world_size!r}")
    if not isinstance(example, torch.Tensor) or example.shape[:1] != (1,):
        raise ValueError(f"example must be one input, a Tensor[1, ...], got {getattr(example, 'shape', type(example))}")
    modules = dict(model.named_modules())
    unknown = [name for name in crossings if name not in modules]
    if unknown or not crossings:
        raise ValueError(f"crossings must name modules of the model; unknown: {unknown or list(crossings)}")
    crossing: dict[str, int] = {}
    handles = [modules[name].register_forward_pre_hook(
        lambda m, inputs, name=name: crossing.update({name: inputs[0][0].numel()})) for name in crossings]
    modes = {m: m.training for m in model.modules()}
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for handle in handles:
            handle.remove()
        for m, training in modes.items():
            m.training = training
    share = (world_size - 1) / world_size  # of a split input, the part held by the other GPUs
    params = sum(p.numel() for p in model.parameters())
    return Communication(crossing, 2 * batch_size * share * sum(crossing.values()), 2 * share * params)
