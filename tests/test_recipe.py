"""cvlib.recipe: each step trains the previous configuration plus one change, as fit would by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cvlib.recipe import Recipe, first_epoch_at
from cvlib.train import LRSchedule, evaluate, fit
from cvlib.tta import FlipTTA

_g = torch.Generator().manual_seed(0)
X = torch.randn(48, 1, 2, 3, generator=_g)
Y = (X[..., 0].sum((1, 2)) > X[..., 2].sum((1, 2))).long()  # the left column against the right one
TRAIN = TensorDataset(X[:32], Y[:32])
# the first validation image twice, with both labels: no model reaches an error of 0
VAL = TensorDataset(torch.cat([X[32:], X[32:33]]), torch.cat([Y[32:], 1 - Y[32:33]]))


def model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 2))


def loaders(seed=0):
    return (DataLoader(TRAIN, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(seed)),
            DataLoader(VAL, batch_size=16))


def constant(net, total_steps):
    return torch.optim.SGD(net.parameters(), lr=0.5), None


def one_cycle(net, total_steps):
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=total_steps)


def test_first_epoch_at_counts_from_one_and_forgives_rounding():
    assert first_epoch_at([0.5, 0.2, 0.04], 0.05) == 3
    assert first_epoch_at([1 - 342 / 360], 0.05) == 1  # 18 of 360 is a hair above 0.05 in floating point
    assert first_epoch_at([0.5, 0.2], 0.05) is None


def test_each_step_is_the_previous_configuration_plus_a_change_trained_as_by_hand(capsys):
    recipe = Recipe(epochs=2, target=0.0, seeds=(0, 5), device="cpu", max_epochs=3)
    recipe.run("baseline", model=model, loaders=loaders, optimizer=constant, loss_fn=F.cross_entropy)
    recipe.run("+ one-cycle", optimizer=one_cycle)
    assert recipe.steps["+ one-cycle"].config == {"model": model, "loaders": loaders, "optimizer": one_cycle,
                                                  "loss_fn": F.cross_entropy}
    for seed, curve in zip((0, 5), recipe.steps["+ one-cycle"].curves):  # the same runs, by hand
        net, (train, val) = model(seed), loaders(seed)
        opt, sched = one_cycle(net, 2 * len(train))
        h = fit(net, opt, train, epochs=2, val_loader=val, device="cpu", progress=False,
                callbacks=[LRSchedule(sched, interval="step")])
        assert curve == h["val_top1_err"]
    # a constant rate never reaching a target of 0 runs to max_epochs; a schedule stops at epochs
    assert [len(c) for c in recipe.steps["baseline"].curves] == [3, 3]
    assert [len(c) for c in recipe.steps["+ one-cycle"].curves] == [2, 2]
    lines = capsys.readouterr().out.splitlines()
    final = [c[1] for c in recipe.steps["baseline"].curves]
    assert lines[0] == (f"baseline: val error after 2 epochs {final[0]:.1%}, {final[1]:.1%} (mean "
                        f"{sum(final) / 2:.1%}); first epoch at <= 0%: not in 3, not in 3")
    table = recipe.table().splitlines()
    assert table[1].split() == ["step", "seed", "0", "seed", "5", "mean", "seed", "0", "seed", "5"]
    assert table[2].startswith("baseline") and table[2].endswith("      > 3      > 3")


def test_a_constant_rate_stops_once_past_epochs_at_the_target():
    recipe = Recipe(epochs=1, target=1.0, seeds=(0,), device="cpu")  # every epoch meets an error of 1
    recipe.run("baseline", model=model, loaders=loaders, optimizer=constant, loss_fn=F.cross_entropy)
    assert len(recipe.steps["baseline"].curves[0]) == 1
    assert recipe.seconds_to_target("baseline") == recipe.steps["baseline"].seconds[0][0]
    assert recipe.seconds_per_epoch("baseline") == recipe.steps["baseline"].seconds[0][0]
    assert "baseline" in recipe.timing_table()


def test_tta_step_is_flip_tta_of_the_step_it_was_measured_on(capsys):
    recipe = Recipe(epochs=2, target=0.0, seeds=(0,), device="cpu")
    recipe.run("scheduled", tta=True, model=model, loaders=loaders, optimizer=one_cycle, loss_fn=F.cross_entropy)
    recipe.add_tta_step("+ flip TTA", of="scheduled")
    step = recipe.steps["+ flip TTA"]
    assert step.config is None and step.seconds == recipe.steps["scheduled"].seconds
    trained = recipe.steps["scheduled"].models[0]
    assert step.curves[0][-1] == evaluate(FlipTTA(trained), loaders()[1], "cpu")["top1_err"]
    assert "+ flip TTA" in recipe.table() and "+ flip TTA" not in recipe.timing_table()


def test_bad_steps_are_named():
    recipe = Recipe(epochs=1, target=0.1, seeds=(0,), device="cpu")
    with pytest.raises(ValueError, match="lacks optimizer, loss_fn"):
        recipe.run("baseline", model=model, loaders=loaders)
    with pytest.raises(ValueError, match="may set model, loaders, optimizer, loss_fn; got lr"):
        recipe.run("baseline", lr=0.1)
    recipe.run("baseline", model=model, loaders=loaders, optimizer=constant, loss_fn=F.cross_entropy)
    with pytest.raises(ValueError, match="already has a step 'baseline'"):
        recipe.run("baseline")
    with pytest.raises(ValueError, match="no step 'baseline' run with tta=True"):
        recipe.add_tta_step("+ flip TTA", of="baseline")
    with pytest.raises(ValueError, match="target must be an error in"):
        Recipe(epochs=1, target=5, seeds=(0,), device="cpu")
    with pytest.raises(ValueError, match="max_epochs must be >= epochs"):
        Recipe(epochs=3, target=0.1, seeds=(0,), device="cpu", max_epochs=2)
