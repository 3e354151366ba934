"""Mini-batches from data kept on the device, with augmentation done on the device.

A ``DataLoader`` with worker processes decodes, augments and collates every image on the CPU,
then copies each batch to the GPU. When the whole training set fits in GPU memory (the digits
are 0.5 MB, CIFAR-10 as float32 is 600 MB), it is faster to copy it once and do everything per
batch on the GPU: shuffling is an index permutation, a batch is one gather, random crops and
flips are one indexing operation on the whole batch. :class:`DeviceLoader` does that;
:func:`make_loader` picks it or a ``DataLoader`` and says which. :func:`augmented_loader` is the
CPU twin: a shuffled ``DataLoader`` that applies the same per-batch transform as it collates.

Shape contract: images ``Tensor[N, C, H, W]`` floating, labels ``Tensor[N]`` int64; a batch
is ``(images[B, C, H, W], labels[B])`` on the loader's device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ._checks import floating_tensor
from .distributed import world as _world

__all__ = ["random_crop_flip", "CropFlip", "DeviceLoader", "fits_on_device", "make_loader", "augmented_loader"]

Transform = Callable[[Tensor, torch.Generator], Tensor]


def random_crop_flip(images: Tensor, padding: int, *, flip: bool, fill: float | Tensor = 0.0,
                     generator: torch.Generator | None = None) -> Tensor:
    """Pad a batch by ``padding`` (with ``fill``), take a random crop of the original size from
    each image, and mirror it left-right with probability 1/2 when ``flip`` is True.

    Offsets and flips are drawn from ``generator`` on the generator's device (the images' device
    when no generator is given), so a CUDA batch is augmented without a round trip to the host.

    Args:
        images: ``Tensor[B, C, H, W]`` floating.
        padding: pixels added on every side, ``>= 0``; crops shift by up to ``padding`` pixels.
        fill: value of the padded border, a float or a ``Tensor[C]`` (one value per channel).
    Returns:
        ``Tensor[B, C, H, W]`` on ``images.device``.
    """
    floating_tensor(images, "images")  # TypeError for a list or an integer tensor
    if images.ndim != 4:
        raise ValueError(f"images must be a floating Tensor[B, C, H, W], got {tuple(images.shape)}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    b, c, h, w = images.shape
    device = images.device
    draw_on = generator.device if generator is not None else device
    fill = torch.as_tensor(fill, dtype=images.dtype, device=device).reshape(-1, 1, 1)  # [C or 1, 1, 1]
    padded = fill.expand(c, h + 2 * padding, w + 2 * padding).repeat(b, 1, 1, 1)  # [B, C, H+2p, W+2p]
    padded[:, :, padding:padding + h, padding:padding + w] = images
    dy, dx = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=draw_on).to(device)  # [B]
    rows = dy[:, None] + torch.arange(h, device=device)  # [B, H]
    cols = dx[:, None] + torch.arange(w, device=device)  # [B, W]
    if flip:
        mirror = (torch.rand(b, generator=generator, device=draw_on) < 0.5).to(device)  # [B]
        cols = torch.where(mirror[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=device)[:, None, None, None]  # [B, 1, 1, 1]
    channel = torch.arange(c, device=device)[None, :, None, None]  # [1, C, 1, 1]
    out = padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]  # [B, C, H, W]
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return out


class CropFlip:
    """The standard CIFAR training augmentation as a per-batch transform for
    :class:`DeviceLoader`: random crop after ``padding`` pixels of ``fill``, then a random
    horizontal flip. ``transform(images[B, C, H, W], generator) -> images[B, C, H, W]``."""

    def __init__(self, padding: int = 4, *, flip: bool = True, fill: float | Tensor = 0.0) -> None:
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative int, got {padding!r}")
        self.padding, self.flip, self.fill = padding, flip, fill

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        return random_crop_flip(images, self.padding, flip=self.flip, fill=self.fill, generator=generator)

    def __repr__(self) -> str:
        return f"CropFlip(padding={self.padding}, flip={self.flip})"


def _tensors(data) -> tuple[Tensor, Tensor]:
    tensors = data.tensors if isinstance(data, TensorDataset) else data
    if not (isinstance(tensors, (tuple, list)) and len(tensors) == 2
            and all(isinstance(t, Tensor) for t in tensors)):
        raise TypeError("data must be a TensorDataset(images, labels) or a pair of tensors, got "
                        f"{type(data).__name__}")
    images, labels = tensors
    if images.ndim < 2 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"expected images[N, ...] and labels[N], got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)}")
    return images, labels


def fits_on_device(nbytes: int, device: str | torch.device, *, fraction: float = 0.5) -> bool:
    """Whether ``nbytes`` fit in ``fraction`` of the device's free memory. The CPU always fits
    (the data is already in host memory)."""
    device = torch.device(device)
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes <= fraction * free


class DeviceLoader:
    """Batches drawn from tensors copied once to ``device``.

    Iterating gives ``(images[B, C, H, W], labels[B])`` on ``device``; each pass draws a new
    order (when ``shuffle``) from a generator seeded with ``seed + epoch``, so runs repeat and
    every data-parallel replica agrees on the order. Under ``torch.distributed`` (or with
    explicit ``rank``/``world_size``) each replica takes every ``world_size``-th sample of that
    order, like ``DistributedSampler``: for training (``shuffle=True``) the order is padded by
    repeating samples so that every replica gets as many batches; for evaluation it is not
    padded, so every sample is counted exactly once.

    Args:
        data: ``TensorDataset(images, labels)`` or a pair ``(images, labels)``.
        batch_size: samples per batch on each replica.
        device: where the data is kept; it must fit (see :func:`fits_on_device`).
        shuffle: a new random order every pass.
        drop_last: drop the last, smaller batch.
        transform: per-batch augmentation ``transform(images, generator) -> images`` run on the
            device, e.g. :class:`CropFlip`; its random numbers come from a generator of its own,
            seeded with ``seed`` and the replica's rank.
        channels_last: keep images in ``torch.channels_last`` memory format.
        seed: seed of the order and of the augmentation.
    """

    def __init__(self, data: TensorDataset | tuple[Tensor, Tensor], batch_size: int, *,
                 device: str | torch.device = "cpu", shuffle: bool = False, drop_last: bool = False,
                 transform: Transform | None = None, channels_last: bool = False, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None) -> None:
        images, labels = _tensors(data)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable(images, generator), got {transform!r}")
        self.device = torch.device(device)
        nbytes = images.nelement() * images.element_size() + labels.nelement() * labels.element_size()
        if not fits_on_device(nbytes, self.device):
            raise MemoryError(f"the data ({nbytes / 2**20:.0f} MiB) does not fit in half of the free "
                              f"memory of {self.device}; use a DataLoader (make_loader(..., "
                              f"resident=False)) instead")
        default_rank, default_world = _world()
        self.rank = default_rank if rank is None else rank
        self.world_size = default_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={self.rank}, "
                             f"world_size={self.world_size}")
        fmt = torch.channels_last if channels_last and images.ndim == 4 else torch.contiguous_format
        self.images = images.to(self.device).contiguous(memory_format=fmt)
        self.labels = labels.to(self.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.transform, self.seed, self.epoch = transform, seed, 0
        self._augment_gen = torch.Generator(self.device).manual_seed(seed * 1_000_003 + self.rank + 1)
        self._explicit_epoch = False

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use the order of ``epoch`` (as ``DistributedSampler.set_epoch``)."""
        self.epoch, self._explicit_epoch = epoch, True

    def _indices(self) -> Tensor:
        n = len(self.labels)
        if self.shuffle:
            order_gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=order_gen).to(self.device)  # the same on every rank
        else:
            order = torch.arange(n, device=self.device)
        if self.world_size > 1:
            if self.shuffle and n % self.world_size:
                extra = self.world_size - n % self.world_size
                order = torch.cat([order, order[:extra]])
            order = order[self.rank::self.world_size]
        return order

    def __len__(self) -> int:
        n = len(self.labels)
        if self.world_size > 1:
            per_rank = -(-n // self.world_size)
            n = per_rank if self.shuffle else len(range(self.rank, n, self.world_size))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self._indices()
        if not self._explicit_epoch:
            self.epoch += 1
        self._explicit_epoch = False
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            index = order[start:start + self.batch_size]
            images = self.images[index]
            if self.transform is not None:
                images = self.transform(images, self._augment_gen)
            yield images, self.labels[index]

    def __repr__(self) -> str:
        return (f"DeviceLoader({len(self.labels)} samples on {self.device}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, transform={self.transform!r}, rank={self.rank}/{self.world_size})")


def make_loader(data: Dataset, batch_size: int, *, device: str | torch.device, shuffle: bool = False,
                drop_last: bool = False, transform: Transform | None = None, channels_last: bool = False,
                seed: int = 0, resident: bool | None = None, num_workers: int = 0,
                verbose: bool = True) -> DeviceLoader | DataLoader:
    """A :class:`DeviceLoader` when the data is a ``TensorDataset`` that fits on ``device``,
    else a ``DataLoader`` (with a ``DistributedSampler`` under ``torch.distributed``).

    ``resident=None`` chooses as above and prints the choice; ``True`` insists on the device
    (an error if impossible); ``False`` always builds a ``DataLoader``. A per-batch
    ``transform`` runs only in a ``DeviceLoader``; for a ``DataLoader`` put the augmentation in
    the dataset (``transform`` is refused there rather than silently dropped). Under
    ``torch.distributed`` the ``DistributedSampler`` pads every replica's share to equal length.
    """
    device = torch.device(device)
    tensors = isinstance(data, TensorDataset) and len(data.tensors) == 2
    if resident is None:
        nbytes = sum(t.nelement() * t.element_size() for t in data.tensors) if tensors else 0
        resident = tensors and fits_on_device(nbytes, device)
        why = ("the tensors fit on the device" if resident else
               "the data is not a pair of tensors" if not tensors else "the tensors do not fit on the device")
        if verbose and _world()[0] == 0:
            print(f"cvlib: {'DeviceLoader' if resident else 'DataLoader'} on {device} ({why})")
    if resident:
        if not tensors:
            raise TypeError("resident=True needs a TensorDataset(images, labels)")
        return DeviceLoader(data, batch_size, device=device, shuffle=shuffle, drop_last=drop_last,
                            transform=transform, channels_last=channels_last, seed=seed)
    if transform is not None:
        raise ValueError("a per-batch transform runs only in a DeviceLoader; put the augmentation "
                         "in the dataset for a DataLoader")
    from torch.utils.data.distributed import DistributedSampler

    rank, world = _world()
    sampler = (DistributedSampler(data, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed,
                                  drop_last=drop_last) if world > 1 else None)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      drop_last=drop_last, generator=torch.Generator().manual_seed(seed) if sampler is None else None,
                      num_workers=num_workers, pin_memory=device.type == "cuda")


class _TransformCollate:
    """``collate_fn`` that stacks the samples and passes the batch through ``transform``."""

    def __init__(self, transform: Transform | None, generator: torch.Generator) -> None:
        self.transform, self.generator = transform, generator

    def __call__(self, batch: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        x = torch.stack([item[0] for item in batch])  # [B, C, H, W]
        y = torch.stack([item[1] for item in batch])  # [B]
        return (x if self.transform is None else self.transform(x, self.generator)), y


def augmented_loader(data: Dataset, batch_size: int, *, generator: torch.Generator,
                     transform: Transform | None = None) -> DataLoader:
    """A shuffled ``DataLoader`` of ``(images[B, C, H, W], labels[B])`` whose every batch is
    passed through ``transform(images, generator)`` (e.g. :class:`CropFlip`) on the CPU as it is
    collated: the ``DataLoader`` twin of ``DeviceLoader(..., transform=...)``.

    One ``generator`` draws both each epoch's order and the augmentation, so one seed fixes
    both; ``transform=None`` gives the batches of ``DataLoader(data, batch_size, shuffle=True,
    generator=generator)``. The loader runs in the calling process (no workers: they would each
    need their own generator).
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be callable as transform(images, generator), got {type(transform).__name__}")
    return DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator,
                      collate_fn=_TransformCollate(transform, generator))
