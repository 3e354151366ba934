"""cvlib.early_stopping: the improvement rule against a Keras-style reference, hand sequences,
the snapshot is a real copy with buffers, restore inside ``fit``, and bad input."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cvlib.data import load_digits
from cvlib.device import seed_everything
from cvlib.early_stopping import EarlyStopping, snapshot_state
from cvlib.train import Callback, evaluate, fit


def keras_reference(values, mode, patience, min_delta):
    """keras.callbacks.EarlyStopping's bookkeeping, transcribed independently: best starts at
    +-inf, ``wait`` counts every epoch and resets on improvement, improvement is
    ``op(value -+ min_delta, best)``. Returns (stopped_epoch or None, best_epoch), 1-based."""
    sign = -1.0 if mode == "min" else 1.0
    op = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    best, best_epoch, wait = -sign * math.inf, None, 0
    for epoch, value in enumerate(values, 1):
        wait += 1
        if op(value - sign * min_delta, best):
            best, best_epoch, wait = value, epoch, 0
            continue
        if wait >= patience:
            return epoch, best_epoch
    return None, best_epoch


def replay(values, **kwargs):
    stopper = EarlyStopping(**kwargs)
    for epoch, value in enumerate(values, 1):
        if stopper.update(epoch, value):
            break
    return stopper


@pytest.mark.parametrize("values, kwargs, stopped, best", [
    # strictly better every epoch: never stops
    ([1.0, 0.9, 0.8, 0.7], dict(patience=1), None, 4),
    # the seed's rule: patience 1 stops at the first epoch that is not better
    ([1.0, 0.5, 0.75, 0.25], dict(patience=1), 3, 2),
    # an equal value is not an improvement
    ([1.0, 0.5, 0.5, 0.5, 0.5], dict(patience=3), 5, 2),
    # a dip and a recovery inside the patience window resets the count
    ([1.0, 0.5, 0.75, 0.625, 0.375, 0.5, 0.5, 0.5], dict(patience=3), 8, 5),
    # gains of exactly min_delta (0.25) do not count; 0.3125 > 0.25 does
    ([1.0, 0.75, 0.8125], dict(patience=2, min_delta=0.25), 3, 1),
    ([1.0, 0.6875, 0.4375, 0.375, 0.0], dict(patience=2, min_delta=0.25), None, 5),
    # steady gains of 1/64 below min_delta = 1/16: stops although the metric keeps improving
    ([1.0, 0.984375, 0.96875, 0.953125], dict(patience=3, min_delta=0.0625), 4, 1),
    # ... but gains are measured from the best, not from the previous epoch, so they add up
    ([1.0, 0.96875, 0.9375, 0.90625, 0.875], dict(patience=3, min_delta=0.0625), None, 4),
    # max mode (an accuracy)
    ([0.5, 0.75, 0.75, 0.625, 0.875, 0.5], dict(mode="max", patience=2), 4, 2),
    ([0.5, 0.75, 0.8125, 0.875], dict(mode="max", patience=2, min_delta=0.125), 4, 2),
])
def test_hand_sequences(values, kwargs, stopped, best):
    stopper = replay(values, **kwargs)
    assert (stopper.stopped_epoch, stopper.best_epoch) == (stopped, best)
    assert stopper.best == values[best - 1]
    reference = keras_reference(values, kwargs.get("mode", "min"), kwargs["patience"],
                                kwargs.get("min_delta", 0.0))
    assert reference == (stopped, best)


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("patience", [1, 2, 3, 7])
@pytest.mark.parametrize("min_delta", [0.0, 1 / 64, 1 / 8])
def test_matches_keras_rule_on_noisy_sequences(mode, patience, min_delta):
    rng = random.Random(patience * 100 + int(min_delta * 1000) + (mode == "max"))
    for _ in range(50):
        # a noisy U-shaped curve in multiples of 1/64: plateaus and ties occur, and every
        # comparison is exact however the rule is written (v + d < b or b - v > d)
        n = rng.randint(1, 40)
        values = [round(64 * ((t / n - 0.4) ** 2 + rng.gauss(0, 0.05))) / 64 for t in range(n)]
        if mode == "max":
            values = [-v for v in values]
        stopper = replay(values, mode=mode, patience=patience, min_delta=min_delta)
        expected = keras_reference(values, mode, patience, min_delta)
        assert (stopper.stopped_epoch, stopper.best_epoch) == expected


def test_wait_counts_epochs_since_the_best():
    stopper = EarlyStopping(patience=5)
    waits = [stopper.update(e, v) or stopper.wait for e, v in enumerate([3, 2, 2.5, 2.5, 1, 4], 1)]
    assert waits == [0, 0, 1, 2, 0, 1]
    assert stopper.summary() == "not stopped (last epoch 6); best val_loss 1.0000 at epoch 5"


def test_metric_values_of_other_types():
    stopper = EarlyStopping(mode="max", patience=1)
    assert not stopper.update(1, torch.tensor(0.5))
    assert not stopper.update(2, 1)
    assert stopper.best == 1.0 and isinstance(stopper.best, float)
    with pytest.raises(TypeError, match="val_loss at epoch 3"):
        stopper.update(3, "0.5")
    with pytest.raises(TypeError, match="val_loss"):
        stopper.update(3, True)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_metric_is_a_clear_error(bad):
    stopper = EarlyStopping("val_top1_err", patience=3)
    stopper.update(1, 0.5)
    with pytest.raises(ValueError, match=r"val_top1_err is .* at epoch 2"):
        stopper.update(2, bad)


def test_missing_metric_names_the_known_keys():
    stopper = EarlyStopping("val_acc", mode="max")
    with pytest.raises(KeyError, match=r"val_acc.*known: \['epoch', 'train_loss', 'val_loss'\]"):
        stopper.on_epoch_end(1, {"epoch": 1, "train_loss": 0.1, "val_loss": 0.2}, nn.Linear(2, 2))


def test_epochs_must_increase():
    stopper = EarlyStopping()
    stopper.update(1, 1.0)
    with pytest.raises(ValueError, match="new EarlyStopping"):
        stopper.update(1, 0.5)
    stopper.reset()
    assert not stopper.update(1, 0.5) and stopper.best_epoch == 1


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(monitor=""), TypeError, "monitor"),
    (dict(monitor=3), TypeError, "monitor"),
    (dict(mode="auto"), ValueError, "mode"),
    (dict(mode="MIN"), ValueError, "mode"),
    (dict(patience=0), ValueError, "patience"),
    (dict(patience=-2), ValueError, "patience"),
    (dict(patience=2.0), TypeError, "patience"),
    (dict(patience=True), TypeError, "patience"),
    (dict(min_delta=-0.1), ValueError, "min_delta"),
    (dict(min_delta=float("nan")), ValueError, "min_delta"),
    (dict(min_delta=float("inf")), ValueError, "min_delta"),
    (dict(min_delta="0.1"), TypeError, "min_delta"),
    (dict(restore_best_weights=1), TypeError, "restore_best_weights"),
])
def test_constructor_rejects_bad_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        EarlyStopping(**kwargs)


def _bn_net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))


def test_snapshot_is_a_copy_that_includes_buffers():
    torch.manual_seed(0)
    model = _bn_net()
    model.train()
    model(torch.randn(8, 4))  # moves BatchNorm's running statistics away from their init
    snap = snapshot_state(model)
    reference = copy.deepcopy(model.state_dict())
    assert snap.keys() == reference.keys()
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked"} <= snap.keys()
    # train more: parameters change through the optimizer, buffers through forward passes
    for _ in range(3):  # plain SGD steps, written out
        model.zero_grad()
        model(torch.randn(8, 4)).square().mean().backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
    with torch.no_grad():
        model[0].weight.add_(1.0)  # in place, like an optimizer step
    assert not torch.equal(model[0].weight, reference["0.weight"])
    assert not torch.equal(model[1].running_mean, reference["1.running_mean"])
    for name, tensor in snap.items():
        torch.testing.assert_close(tensor, reference[name], rtol=0, atol=0)
        assert tensor.data_ptr() != model.state_dict()[name].data_ptr()


def test_snapshot_rejects_a_non_module():
    with pytest.raises(TypeError, match="model"):
        snapshot_state({"weight": torch.zeros(2)})


def _scripted_run(values, model, **kwargs):
    """Drive the callback as fit does, with each epoch's weights set to the epoch number."""
    stopper = EarlyStopping(**kwargs)
    for epoch, value in enumerate(values, 1):
        with torch.no_grad():
            for t in model.state_dict().values():
                t.fill_(epoch)  # parameters and buffers alike
        if stopper.on_epoch_end(epoch, {"epoch": epoch, "val_loss": value}, model):
            break
    stopper.on_train_end(None, model)
    return stopper


@pytest.mark.parametrize("values, best, last", [
    ([3.0, 2.0, 2.5, 2.25, 2.125], 2, 5),   # stopped: weights of epoch 2, not of epoch 5
    ([3.0, 2.0, 2.5, 1.0], 4, 4),            # ran out of epochs: the best is the last
    ([3.0, 2.0, 2.5], 2, 3),                 # ran out of epochs before patience: still restored
])
def test_restores_the_best_epochs_state_parameters_and_buffers(values, best, last):
    model = _bn_net()
    stopper = _scripted_run(values, model, patience=3)
    assert stopper.best_epoch == best
    for name, t in model.state_dict().items():
        assert torch.all(t == best), f"{name} was not restored to epoch {best}"
    model = _bn_net()
    _scripted_run(values, model, patience=3, restore_best_weights=False)
    assert all(torch.all(t == last) for t in model.state_dict().values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_restore_works_after_the_model_moves_device():
    model = _bn_net()
    stopper = EarlyStopping(patience=1)
    stopper.on_epoch_end(1, {"val_loss": 1.0}, model)
    expected = copy.deepcopy(model.state_dict())
    model.cuda()
    with torch.no_grad():
        model[0].weight.zero_()
    stopper.on_train_end(None, model)
    assert model[0].weight.is_cuda
    for name, t in model.state_dict().items():
        torch.testing.assert_close(t.cpu(), expected[name], rtol=0, atol=0)


class EveryState(Callback):
    """Keeps an independent deep copy of the model's state after every epoch."""

    def __init__(self):
        self.states = {}

    def on_epoch_end(self, epoch, metrics, model):
        self.states[epoch] = copy.deepcopy(model.state_dict())


def test_with_fit_stops_and_restores_the_best_epoch():
    splits = load_digits()
    gen = seed_everything(0)
    x, y = splits.train.tensors
    train = TensorDataset(x[:200], y[:200])
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),
                          nn.Linear(64, 10))  # BatchNorm: buffers must be restored too
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    val_loader = DataLoader(splits.val, batch_size=512)
    every, stopper = EveryState(), EarlyStopping("val_loss", patience=2)
    history = fit(model, opt, DataLoader(train, batch_size=20, shuffle=True, generator=gen),
                  epochs=40, val_loader=val_loader, device="cpu", progress=False,
                  callbacks=[every, stopper])
    assert history.stopped_by == "EarlyStopping"
    assert len(history) == stopper.stopped_epoch < 40
    losses = history["val_loss"]
    assert 1 < stopper.best_epoch == 1 + losses.index(min(losses)) < stopper.stopped_epoch
    assert stopper.best == min(losses)
    for name, t in model.state_dict().items():
        torch.testing.assert_close(t, every.states[stopper.best_epoch][name], rtol=0, atol=0)
    again = evaluate(model, val_loader, torch.device("cpu"))
    assert again["loss"] == pytest.approx(stopper.best, abs=1e-6)
