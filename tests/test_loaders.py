"""cvlib.loaders: the device-resident loader and its per-batch augmentation."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, TensorDataset

from cvlib.loaders import CropFlip, DeviceLoader, augmented_loader, fits_on_device, make_loader, random_crop_flip
from cvlib.models import SmallCNN
from cvlib.train import fit

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _data(n=50, c=1, size=8):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, c, size, size, generator=g), torch.arange(n) % 10


def _epoch_ids(loader):
    return torch.cat([x[:, 0, 0, 0] for x, _ in loader])


def test_every_sample_once_per_epoch_in_a_new_order():
    x, y = _data()
    x[:, 0, 0, 0] = torch.arange(50.0)
    loader = DeviceLoader((x, y), 16, shuffle=True, seed=5)
    first, second = _epoch_ids(loader), _epoch_ids(loader)
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(50))
    assert not torch.equal(first, second)
    assert [len(b[1]) for b in loader] == [16, 16, 16, 2] and len(loader) == 4
    again = DeviceLoader((x, y), 16, shuffle=True, seed=5)
    assert torch.equal(_epoch_ids(again), first)  # same seed, same order
    assert torch.equal(_epoch_ids(again), second)  # passes count epochs 0, 1, ...
    again.set_epoch(0)
    assert torch.equal(_epoch_ids(again), first)  # set_epoch picks the epoch's order


def test_labels_travel_with_their_images_and_drop_last():
    x, y = _data()
    x[:, 0, 0, 0] = y.float()
    loader = DeviceLoader(TensorDataset(x, y), 16, shuffle=True, drop_last=True)
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    assert all(torch.equal(xb[:, 0, 0, 0], yb.float()) for xb, yb in batches)


@pytest.mark.parametrize("n,world", [(50, 2), (37, 3), (8, 4)])
def test_training_shards_are_equal_and_cover_everything(n, world):
    x, y = _data(n)
    x[:, 0, 0, 0] = torch.arange(float(n))
    shards = [DeviceLoader((x, y), 4, shuffle=True, seed=1, rank=r, world_size=world) for r in range(world)]
    ids = [_epoch_ids(s) for s in shards]
    assert len({len(i) for i in ids}) == 1 and all(len(s) == -(-len(ids[0]) // 4) for s in shards)
    assert set(torch.cat(ids).tolist()) == set(range(n))


def test_matches_a_dataloader_without_shuffling():
    """Same batches as torch's DataLoader, hence the same training run."""
    x, y = _data(64)
    ours = [b for b in DeviceLoader((x, y), 16)]
    theirs = [b for b in DataLoader(TensorDataset(x, y), batch_size=16)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(ours, theirs))
    runs = []
    for loader in (DeviceLoader((x, y), 16), DataLoader(TensorDataset(x, y), batch_size=16)):
        torch.manual_seed(0)
        model = SmallCNN(width=4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        runs.append(fit(model, opt, loader, epochs=2, device="cpu", progress=False))
    assert runs[0].table() == runs[1].table()


def test_crop_flip_matches_torchvision_crop_and_flip():
    x, _ = _data(12, c=3)
    out = random_crop_flip(x, 2, flip=True, fill=0.5, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)  # the same draws, replayed
    dy, dx = torch.randint(0, 5, (2, 12), generator=g)
    mirror = torch.rand(12, generator=g) < 0.5
    for i in range(12):
        want = TF.crop(TF.pad(x[i], [2], fill=0.5), int(dy[i]), int(dx[i]), 8, 8)
        want = TF.horizontal_flip(want) if mirror[i] else want
        assert torch.equal(out[i], want), i
    assert out.is_contiguous() and 0 < int(mirror.sum()) < 12


def test_crop_flip_keeps_channels_last_and_checks_input():
    x, _ = _data(4, c=3)
    x = x.contiguous(memory_format=torch.channels_last)
    out = CropFlip(1)(x, torch.Generator().manual_seed(0))
    assert out.is_contiguous(memory_format=torch.channels_last) and out.shape == x.shape
    with pytest.raises(ValueError, match="padding"):
        CropFlip(-1)
    with pytest.raises(ValueError, match=r"Tensor\[B, C, H, W\]"):
        random_crop_flip(torch.zeros(3, 8, 8), 1, flip=False)
    with pytest.raises(TypeError, match="images must be a torch.Tensor, got list"):
        random_crop_flip([[0.0]], 1, flip=False)
    with pytest.raises(TypeError, match="images must have a floating dtype"):
        random_crop_flip(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), 1, flip=False)


def test_transform_changes_each_pass_but_repeats_with_the_seed():
    x, y = _data(16)
    passes = [torch.cat([b[0] for b in DeviceLoader((x, y), 8, transform=CropFlip(2), seed=s)])
              for s in (0, 0, 1)]
    assert torch.equal(passes[0], passes[1]) and not torch.equal(passes[0], passes[2])


def test_bad_input_is_named():
    x, y = _data()
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader((x, y), 0)
    with pytest.raises(TypeError, match="TensorDataset"):
        DeviceLoader([x], 4)
    with pytest.raises(ValueError, match=r"labels\[N\]"):
        DeviceLoader((x, y[:-1]), 4)
    with pytest.raises(ValueError, match="rank"):
        DeviceLoader((x, y), 4, rank=2, world_size=2)
    with pytest.raises(TypeError, match="callable"):
        DeviceLoader((x, y), 4, transform="flip")


def test_make_loader_says_what_it_chose(capsys):
    x, y = _data()
    assert isinstance(make_loader(TensorDataset(x, y), 8, device="cpu"), DeviceLoader)
    assert "DeviceLoader on cpu (the tensors fit on the device)" in capsys.readouterr().out
    plain = make_loader(list(zip(x, y)), 8, device="cpu", shuffle=True)
    assert isinstance(plain, DataLoader) and "not a pair of tensors" in capsys.readouterr().out
    assert isinstance(make_loader(TensorDataset(x, y), 8, device="cpu", resident=False), DataLoader)
    with pytest.raises(ValueError, match="per-batch transform runs only in a DeviceLoader"):
        make_loader(list(zip(x, y)), 8, device="cpu", transform=CropFlip(1))
    with pytest.raises(TypeError, match="resident=True needs a TensorDataset"):
        make_loader(list(zip(x, y)), 8, device="cpu", resident=True)
    assert fits_on_device(10**15, "cpu")


@CUDA
def test_on_cuda_batches_and_augmentation_stay_on_the_gpu():
    x, y = _data(64, c=3, size=32)
    loader = DeviceLoader((x, y), 16, device="cuda", shuffle=True, transform=CropFlip(4), channels_last=True)
    for xb, yb in loader:
        assert xb.is_cuda and yb.is_cuda and xb.is_contiguous(memory_format=torch.channels_last)
    assert not fits_on_device(10**15, "cuda")
    with pytest.raises(MemoryError, match="does not fit"):
        DeviceLoader((torch.zeros(1).expand(2**40), torch.zeros(1, dtype=torch.long).expand(2**40)), 4,
                     device="cuda")


# --- augmented_loader: the DataLoader twin of a DeviceLoader with a transform ------------------

def _digits_like(n=50):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))


def test_augmented_loader_is_a_shuffled_dataloader_plus_the_transform_drawn_from_one_generator():
    data, transform = _digits_like(), CropFlip(1, flip=True)
    got = list(augmented_loader(data, 16, generator=torch.Generator().manual_seed(3), transform=transform))
    # the reference: the same shuffled order, then random_crop_flip with the same generator, batch by batch
    g = torch.Generator().manual_seed(3)
    want = [(random_crop_flip(x, 1, flip=True, generator=g), y)
            for x, y in DataLoader(data, batch_size=16, shuffle=True, generator=g)]
    assert [len(y) for _, y in got] == [16, 16, 16, 2]
    for (x, y), (x_ref, y_ref) in zip(got, want, strict=True):
        assert torch.equal(y, y_ref) and torch.equal(x, x_ref)
    plain = list(augmented_loader(data, 16, generator=torch.Generator().manual_seed(3)))
    ref = list(DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(plain, ref, strict=True))
    assert not torch.equal(got[0][0], plain[0][0])  # the transform did something


def test_augmented_loader_names_bad_arguments():
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        augmented_loader(_digits_like(), 16, generator=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        augmented_loader(_digits_like(), 0, generator=torch.Generator())
    with pytest.raises(TypeError, match="transform must be callable"):
        augmented_loader(_digits_like(), 16, generator=torch.Generator(), transform=1)
