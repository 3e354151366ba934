"""Runnable checks that a training set-up works, before you tune it (chapter 05).

Each recipe from the practitioners' checklists is a function that runs a few training steps on
*your* model and returns a report, so that "did my weights update?" has an answer instead of a
hunch. All three put the model, the optimizer and torch's RNG back as they found them:

* :func:`overfit_one_batch`: a model that cannot memorise one batch has a bug, not a tuning problem.
* :func:`gradient_flow_check`: every trainable parameter gets a finite, non-zero gradient and
  changes after one optimizer step.
* :func:`lr_range_test`: an exponential learning-rate sweep with a smoothed loss (Smith 2017).

The chapter's other measurements live with their topics: :mod:`cvlib.diagnostics` (confidence,
under-/over-fitting, receptive field, distinct units) and :mod:`cvlib.tta` (flip test-time
augmentation).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .early_stopping import snapshot_state

__all__ = [
    "OverfitResult", "overfit_one_batch",
    "GradientFlowReport", "gradient_flow_check",
    "LRRangeResult", "lr_range_test",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
STATUSES = ("ok", "frozen", "no_grad", "nonfinite", "zero_grad", "unchanged")


def _check_module(model, optimizer=None) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")


@contextmanager
def _restored(model: nn.Module, optimizer: torch.optim.Optimizer | None = None):
    """Run the body, then put back the model's parameters, buffers, gradients and per-module
    train/eval flags, the optimizer's state and hyper-parameters, and torch's global RNG."""
    state = snapshot_state(model)
    grads = {p: (None if p.grad is None else p.grad.clone()) for p in model.parameters()}
    modes = {m: m.training for m in model.modules()}
    opt_state = copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices):  # dropout draws do not advance the caller's RNG
            yield
    finally:
        model.load_state_dict(state)
        for p, g in grads.items():
            p.grad = g
        for m, training in modes.items():
            m.training = training
        if optimizer is not None:
            optimizer.load_state_dict(opt_state)


# --- overfit one batch ---------------------------------------------------------------------

@dataclass
class OverfitResult:
    """``reached``: the target was met, after ``steps`` optimizer steps (``None`` if not).
    ``losses[i]`` and ``accuracies[i]`` are measured before step ``i + 1`` (index 0 = start)."""

    reached: bool
    steps: int | None
    losses: list[float]
    accuracies: list[float]
    message: str

    def __str__(self) -> str:
        return self.message


def overfit_one_batch(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: Tensor,
                      target: Tensor, *, loss_fn: LossFn = F.cross_entropy, max_steps: int = 200,
                      loss_target: float = 0.01, acc_target: float = 1.0) -> OverfitResult:
    """Train on one fixed batch until ``loss <= loss_target`` and ``accuracy >= acc_target``.

    ``inputs[B, ...]`` and ``target[B]`` (class indices) must be on the model's device. The
    model *is* trained (this is a check you run on a fresh model). Accuracy is argmax accuracy.
    A healthy model and loop reach a near-zero loss in tens to hundreds of steps; one that
    cannot is reported with its best loss, so the failure reads as a diagnosis.
    """
    _check_module(model, optimizer)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
    model.train()
    losses, accs = [], []
    for step in range(max_steps + 1):
        logits = model(inputs)
        loss = loss_fn(logits, target)
        losses.append(float(loss.detach()))
        accs.append(float((logits.argmax(1) == target).float().mean()))
        if not math.isfinite(losses[-1]):
            return OverfitResult(False, None, losses, accs,
                                 f"FAILED: the loss became {losses[-1]} at step {step}: learning rate "
                                 f"too high or a numerical bug")
        if losses[-1] <= loss_target and accs[-1] >= acc_target:
            return OverfitResult(True, step, losses, accs,
                                 f"OK: loss {losses[-1]:.4f} <= {loss_target} and accuracy "
                                 f"{accs[-1]:.0%} after {step} steps")
        if step < max_steps:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return OverfitResult(False, None, losses, accs,
                         f"FAILED: after {max_steps} steps the loss is {losses[-1]:.4f} (best "
                         f"{min(losses):.4f}, target {loss_target}) and accuracy {accs[-1]:.0%}: "
                         f"check the labels, the loss, the learning rate, and what the model sees")


# --- gradient flow and weight updates ------------------------------------------------------

@dataclass
class GradientFlowReport:
    """One status per named parameter, in ``model.named_parameters()`` order:

    * ``frozen``: ``requires_grad=False``, so no gradient and no update (by design or by mistake);
    * ``no_grad``: trainable but ``.grad`` is ``None`` after backward: not used by the loss
      (unused layer, detached branch);
    * ``nonfinite``: the gradient, or the value after the step, holds NaN or inf;
    * ``zero_grad``: the gradient is exactly zero everywhere (dead ReLUs, a zero gate);
    * ``unchanged``: a healthy gradient, but ``optimizer.step()`` left it bit-for-bit the same
      (not in the optimizer, learning rate 0);
    * ``ok``: none of the above.

    ``update_ratio`` is ``||theta_after - theta_before|| / ||theta_before||`` over all trainable
    parameters. One healthy step moves the weights by a small fraction of their size (about
    1e-3 to 1e-2); a ratio above ``max_update_ratio`` (default 1: the step is larger than the
    weights) is reported as a problem too, since a learning rate that high wrecks the model in
    one step while every gradient still looks fine.
    """

    status: dict[str, str]
    loss: float
    update_ratio: float
    allow_frozen: bool = False
    max_update_ratio: float = 1.0
    problems: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        ok = {"ok", "frozen"} if self.allow_frozen else {"ok"}
        self.problems = {n: s for n, s in self.status.items() if s not in ok}

    @property
    def step_too_large(self) -> bool:
        return not self.update_ratio <= self.max_update_ratio  # NaN counts as too large

    @property
    def ok(self) -> bool:
        return not self.problems and not self.step_too_large

    def __str__(self) -> str:
        head = (f"{'OK' if self.ok else 'PROBLEMS'}: {len(self.status)} parameters, loss "
                f"{self.loss:.4f}, update ratio {self.update_ratio:.1e}")
        lines = [head, *(f"  {s:9s} {n}" for n, s in self.problems.items())]
        if self.step_too_large:
            lines.append(f"  the step moved the weights by more than {self.max_update_ratio:g}x their "
                         f"norm: learning rate too high")
        return "\n".join(lines)


def gradient_flow_check(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: Tensor,
                        target: Tensor, *, loss_fn: LossFn = F.cross_entropy,
                        allow_frozen: bool = False, max_update_ratio: float = 1.0) -> GradientFlowReport:
    """One forward, backward and ``optimizer.step()`` in training mode, then every parameter
    classified (see :class:`GradientFlowReport`), then everything put back.

    ``inputs[B, ...]``, ``target[B]`` on the model's device. Gradients left over from earlier
    backward passes are cleared first (a stale ``.grad`` would hide a missing one). Afterwards
    the model's parameters, buffers (e.g. BatchNorm running statistics), ``.grad`` s and
    per-module train/eval flags, the optimizer's state and hyper-parameters and torch's global
    RNG are exactly as before. ``allow_frozen=True`` accepts ``requires_grad=False``
    parameters (fine-tuning a part of a network); by default they count as problems, since a
    forgotten freeze is a common bug. ``max_update_ratio``: see :class:`GradientFlowReport`.
    """
    _check_module(model, optimizer)
    named = list(model.named_parameters())
    with _restored(model, optimizer):
        model.train()
        before = {n: p.detach().clone() for n, p in named}
        for _, p in named:
            p.grad = None
        loss = loss_fn(model(inputs), target)
        if loss.requires_grad:
            loss.backward()
        grads = {n: (None if p.grad is None else p.grad.detach().clone()) for n, p in named}
        optimizer.step()
        after = {n: p.detach().clone() for n, p in named}
    status, moved, norm = {}, 0.0, 0.0
    for n, p in named:
        g = grads[n]
        if not p.requires_grad:
            status[n] = "frozen"
        elif g is None:
            status[n] = "no_grad"
        elif not (torch.isfinite(g).all() and torch.isfinite(after[n]).all()):
            status[n] = "nonfinite"
        elif not g.any():
            status[n] = "zero_grad"
        elif torch.equal(before[n], after[n]):
            status[n] = "unchanged"
        else:
            status[n] = "ok"
        if p.requires_grad:
            moved += float((after[n] - before[n]).double().pow(2).sum())
            norm += float(before[n].double().pow(2).sum())
    ratio = math.sqrt(moved / norm) if norm > 0 else math.inf
    return GradientFlowReport(status, float(loss.detach()), ratio, allow_frozen, max_update_ratio)


# --- learning-rate range test --------------------------------------------------------------

@dataclass
class LRRangeResult:
    """``lrs[i]``, raw ``losses[i]`` and bias-corrected ``smoothed[i]`` of each step taken.

    ``suggested_lr`` follows the rule stated in :func:`lr_range_test`; ``diverged`` says
    whether the sweep stopped early because the loss blew up.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    diverged: bool
    min_lr: float
    suggested_lr: float


def lr_range_test(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable,
                  *, start_lr: float = 1e-6, end_lr: float = 10.0, num_steps: int = 100,
                  beta: float = 0.98, diverge_factor: float = 4.0, loss_fn: LossFn = F.cross_entropy,
                  device: torch.device | str | None = None) -> LRRangeResult:
    """Sweep the learning rate exponentially from ``start_lr`` to ``end_lr``, one training step
    per value, and record the loss (Smith 2017, *Cyclical Learning Rates*; fast.ai's ``lr_find``).

    Step ``i`` (0-based) trains on the next ``(x, y)`` from ``batches`` (re-iterated when it
    runs out) with ``lr_i = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))`` in every
    param group. The raw loss is smoothed by a bias-corrected exponential moving average:
    ``avg = beta * avg + (1 - beta) * loss``, ``smoothed_i = avg / (1 - beta ** (i + 1))``.
    The sweep stops after a step whose smoothed loss exceeds ``diverge_factor`` times the
    lowest so far, or before recording a non-finite loss.

    Suggested learning rate: the one at the minimum of the smoothed loss, divided by 10 (at
    the minimum the loss is already about to blow up; an order of magnitude lower it is still
    falling steeply). The model and optimizer are restored afterwards (see
    :func:`gradient_flow_check`), so the sweep has no side effects except on ``batches``.
    """
    _check_module(model, optimizer)
    if not (0 < start_lr < end_lr):
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps must be an int >= 2, got {num_steps!r}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    if not diverge_factor > 1:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor!r}")
    lrs, losses, smoothed, diverged, avg = [], [], [], False, 0.0
    with _restored(model, optimizer):
        model.train()
        stream = iter(batches)
        for i in range(num_steps):
            try:
                x, y = next(stream)
            except StopIteration:
                stream = iter(batches)
                try:
                    x, y = next(stream)
                except StopIteration:
                    raise ValueError("batches yielded nothing") from None
            if device is not None:
                x, y = x.to(device), y.to(device)
            lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_fn(model(x), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                diverged = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            avg = beta * avg + (1 - beta) * value
            lrs.append(lr)
            losses.append(value)
            smoothed.append(avg / (1 - beta ** (i + 1)))
            if smoothed[-1] > diverge_factor * min(smoothed):
                diverged = True
                break
    if not lrs:
        raise ValueError(f"the loss was not finite at the first step (lr={start_lr})")
    best = min(range(len(smoothed)), key=smoothed.__getitem__)
    return LRRangeResult(lrs, losses, smoothed, diverged, lrs[best], lrs[best] / 10)
