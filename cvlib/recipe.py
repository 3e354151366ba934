"""One change at a time: the experiment harness of chapter 05's fast-training recipe.

A :class:`Recipe` is a sequence of named steps. Each step is the previous step's configuration
with one change, trained once per seed with :func:`cvlib.train.fit`. For every run it keeps the
validation-error curve, the seconds of every epoch and the trained model, and it reports

* the validation error after ``epochs`` epochs, and
* the first epoch at which the validation error is at or below ``target``
  (:func:`first_epoch_at`).

A configuration is a dict of four ingredients, each a function:

* ``model(seed) -> nn.Module``;
* ``loaders(seed=seed) -> (train_loader, val_loader)``;
* ``optimizer(model, total_steps) -> (optimizer, scheduler or None)``: a scheduler is planned
  for ``total_steps = epochs * len(train_loader)`` steps and stepped after every optimizer step;
* ``loss_fn(logits[B, C], labels[B]) -> loss``.

A run at a constant rate (no scheduler) starts the same whatever its length, so it goes on after
``epochs`` epochs until it reaches ``target`` (at most ``max_epochs``, :class:`StopAtTarget`); a
scheduled run is planned for ``epochs`` epochs and stops there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .callbacks import Callback, LRSchedule
from .train import evaluate, fit
from .tta import FlipTTA

__all__ = ["first_epoch_at", "FlipTTAError", "StopAtTarget", "Step", "Recipe"]

INGREDIENTS = ("model", "loaders", "optimizer", "loss_fn")


def first_epoch_at(errors: Sequence[float], target: float) -> int | None:
    """The first epoch (counted from 1) whose error is ``<= target``, or ``None``."""
    # (+ 1e-9: an error of 18 in 360 is computed as 1 - 342/360, a hair above 0.05)
    return next((epoch for epoch, err in enumerate(errors, 1) if err <= target + 1e-9), None)


class FlipTTAError(Callback):
    """Records the validation error of ``FlipTTA(model)`` after every epoch in ``errors``
    (training is not affected)."""

    def __init__(self, loader, device: torch.device | str) -> None:
        self.loader, self.device, self.errors = loader, device, []

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        self.errors.append(evaluate(FlipTTA(model), self.loader, self.device)["top1_err"])


class StopAtTarget(Callback):
    """Stops training after at least ``min_epochs`` epochs, as soon as the validation error
    (``val_top1_err``) has been at or below ``target`` in some epoch."""

    def __init__(self, target: float, min_epochs: int) -> None:
        self.target, self.min_epochs, self.errors = target, min_epochs, []

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool:
        self.errors.append(metrics["val_top1_err"])
        return epoch >= self.min_epochs and first_epoch_at(self.errors, self.target) is not None


@dataclass
class Step:
    """One step of a recipe. ``config`` is ``None`` for a step measured on another step's runs
    (:meth:`Recipe.add_tta_step`). Per seed, in the order of ``Recipe.seeds``: ``curves[i]``
    the validation error of every epoch, ``seconds[i]`` the seconds of every epoch,
    ``models[i]`` the trained model, ``tta_curves[i]`` FlipTTA's validation error of every
    epoch (only when run with ``tta=True``)."""

    config: dict | None
    curves: list[list[float]] = field(default_factory=list)
    seconds: list[list[float]] = field(default_factory=list)
    models: list[nn.Module] = field(default_factory=list)
    tta_curves: list[list[float]] = field(default_factory=list)


class Recipe:
    """Steps trained for ``epochs`` epochs (constant-rate runs: up to ``max_epochs``, default
    ``4 * epochs``) on ``device``, once per seed of ``seeds``; ``steps`` maps each name to its
    :class:`Step`, in the order they were run."""

    def __init__(self, *, epochs: int, target: float, seeds: Sequence[int], device: torch.device | str,
                 max_epochs: int | None = None) -> None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {epochs!r}")
        if not 0 <= target <= 1:
            raise ValueError(f"target must be an error in [0, 1], got {target!r}")
        if not seeds:
            raise ValueError("seeds must name at least one seed")
        self.max_epochs = 4 * epochs if max_epochs is None else max_epochs
        if self.max_epochs < epochs:
            raise ValueError(f"max_epochs must be >= epochs ({epochs}), got {self.max_epochs}")
        self.epochs, self.target, self.seeds, self.device = epochs, target, tuple(seeds), device
        self.steps: dict[str, Step] = {}

    def run(self, name: str, *, tta: bool = False, **change) -> None:
        """Train the previous step's configuration with ``change`` applied (the first step must
        give all four ingredients), once per seed, and print the step's :meth:`report`. With
        ``tta=True`` FlipTTA's validation error is recorded after every epoch as well."""
        if name in self.steps:
            raise ValueError(f"the recipe already has a step {name!r}")
        unknown = sorted(set(change) - set(INGREDIENTS))
        if unknown:
            raise ValueError(f"a change may set {', '.join(INGREDIENTS)}; got {', '.join(unknown)}")
        configs = [step.config for step in self.steps.values() if step.config is not None]
        config = {**(configs[-1] if configs else {}), **change}
        missing = [k for k in INGREDIENTS if k not in config]
        if missing:
            raise ValueError(f"step {name!r}: the configuration lacks {', '.join(missing)}")
        step = Step(config)
        for seed in self.seeds:
            model = config["model"](seed)
            train_loader, val_loader = config["loaders"](seed=seed)
            optimizer, scheduler = config["optimizer"](model, self.epochs * len(train_loader))
            callbacks = [FlipTTAError(val_loader, self.device)] if tta else []
            callbacks.append(StopAtTarget(self.target, self.epochs) if scheduler is None
                             else LRSchedule(scheduler, interval="step"))
            history = fit(model, optimizer, train_loader, epochs=self.epochs if scheduler else self.max_epochs,
                          val_loader=val_loader, loss_fn=config["loss_fn"], callbacks=callbacks,
                          device=self.device, progress=False)
            step.curves.append(history["val_top1_err"])
            step.seconds.append(history["seconds"])
            step.models.append(model)
            if tta:
                step.tta_curves.append(callbacks[0].errors)
        self.steps[name] = step
        print(self.report(name))

    def add_tta_step(self, name: str, of: str) -> None:
        """A step that trains nothing: the FlipTTA errors recorded during step ``of``'s runs
        (run with ``tta=True``), with their seconds; prints its :meth:`report`."""
        source = self.steps.get(of)
        if source is None or not source.tta_curves:
            raise ValueError(f"no step {of!r} run with tta=True; steps: {list(self.steps)}")
        self.steps[name] = Step(None, curves=source.tta_curves, seconds=source.seconds)
        print(self.report(name))

    def report(self, name: str) -> str:
        """One line: each seed's validation error after ``epochs`` epochs, their mean, and each
        seed's first epoch at or below the target."""
        curves = self.steps[name].curves
        final = [c[self.epochs - 1] for c in curves]
        reached = [first_epoch_at(c, self.target) for c in curves]
        return (f"{name}: val error after {self.epochs} epochs " + ", ".join(f"{e:.1%}" for e in final)
                + f" (mean {sum(final) / len(final):.1%}); first epoch at <= {self.target:.0%}: "
                + ", ".join(str(r) if r else f"not in {len(c)}" for r, c in zip(reached, curves)))

    def table(self) -> str:
        """All steps side by side: errors after ``epochs`` epochs per seed and their mean, and
        the epoch each seed first reached the target (``> n``: not in its n epochs)."""
        lines = [f"{'':24s}{'val error after ' + str(self.epochs) + ' epochs':^26s}  "
                 f"{'epochs to ' + f'{self.target:.0%}':^16s}",
                 f"{'step':24s}" + "".join(f"{'seed ' + str(s):>9s}" for s in self.seeds) + f"{'mean':>8s}  "
                 + "".join(f"{'seed ' + str(s):>9s}" for s in self.seeds)]
        for name, step in self.steps.items():
            final = [c[self.epochs - 1] for c in step.curves]
            reached = [first_epoch_at(c, self.target) or f"> {len(c)}" for c in step.curves]
            lines.append(f"{name:24s}" + "".join(f"{e:9.1%}" for e in final) + f"{sum(final) / len(final):8.1%}  "
                         + "".join(f"{r:>9}" for r in reached))
        return "\n".join(lines)

    def seconds_per_epoch(self, name: str) -> float:
        """Mean seconds of one epoch over all of the step's runs."""
        seconds = self.steps[name].seconds
        return sum(map(sum, seconds)) / sum(map(len, seconds))

    def seconds_to_target(self, name: str) -> float | None:
        """Mean over the seeds of the training seconds until the first epoch at or below the
        target (``None`` unless every seed got there)."""
        step = self.steps[name]
        firsts = [first_epoch_at(c, self.target) for c in step.curves]
        if None in firsts:
            return None
        return sum(sum(s[:first]) for s, first in zip(step.seconds, firsts)) / len(firsts)

    def timing_table(self) -> str:
        """Seconds per epoch, milliseconds per optimizer step and seconds to the target of every
        trained step, with the speed-ups over the first step (wall-clock: differs run to run)."""
        first = next(iter(self.steps))
        base_epoch, base_target = self.seconds_per_epoch(first), self.seconds_to_target(first)
        lines = [f"{'step':24s}{'s/epoch':>9s}{'ms/step':>9s}{'speed-up':>10s}"
                 f"{'s to ' + f'{self.target:.0%}':>10s}{'speed-up':>10s}"]
        for name, step in self.steps.items():
            if step.config is None:
                continue
            per_epoch, to_target = self.seconds_per_epoch(name), self.seconds_to_target(name)
            steps = len(step.config["loaders"](seed=self.seeds[0])[0])
            lines.append(f"{name:24s}{per_epoch:9.3f}{1e3 * per_epoch / steps:9.2f}{base_epoch / per_epoch:9.2f}x"
                         + (f"{to_target:10.2f}" if to_target else f"{'-':>10s}")
                         + (f"{base_target / to_target:9.2f}x" if to_target and base_target else f"{'-':>10s}"))
        return "\n".join(lines)
