"""Early stopping with patience and ``min_delta``, restoring the best weights (chapter 02).

Watch one metric per epoch (``val_loss`` by default) in a stated direction (``mode="min"`` or
``"max"``). With ``best`` the best value seen so far, an epoch's value ``v`` is an
**improvement** when it beats ``best`` by *more than* ``min_delta``:

* ``mode="min"``: ``v + min_delta < best``
* ``mode="max"``: ``v - min_delta > best``

which is the rule of ``keras.callbacks.EarlyStopping`` and Lightning's ``EarlyStopping``
(an equal value, or a gain of exactly ``min_delta``, is not an improvement). The first epoch
always improves on "nothing seen yet". Training stops at the end of the epoch that makes
``patience`` epochs in a row without improvement (Keras's and Lightning's count, so
``patience=1`` stops at the first epoch that fails to improve). The model's state at the end
of the best epoch is kept as a copy and loaded back when training ends.

Prechelt, *Early Stopping -- But When?*, in Neural Networks: Tricks of the Trade (1998).
"""

from __future__ import annotations

import math
from numbers import Real

from torch import Tensor, nn

from .callbacks import Callback, History

__all__ = ["snapshot_state", "EarlyStopping"]

MODES = ("min", "max")


def snapshot_state(model: nn.Module) -> dict[str, Tensor]:
    """A copy of ``model.state_dict()``: parameters *and* buffers (e.g. BatchNorm's running
    mean, variance and batch count), each tensor cloned so that training the model further
    cannot change the snapshot. Tensors stay on the device (and dtype) they are on.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


class EarlyStopping(Callback):
    """Stop :func:`cvlib.train.fit` when ``monitor`` stops improving; restore the best state.

    Args:
        monitor: key of the metric in each epoch's row, e.g. ``"val_loss"``, ``"val_top1_err"``.
        mode: ``"min"`` (lower is better, losses and errors) or ``"max"`` (accuracies).
        patience: epochs in a row without improvement that stop training, an int >= 1.
        min_delta: the margin, >= 0, by which a value must beat the best to count as an
            improvement (in the metric's own units).
        restore_best_weights: load the best epoch's state back into the model when training
            ends, however it ends (stopped, ran out of epochs, or an error).

    After training: ``best`` (the best value), ``best_epoch``, ``stopped_epoch`` (``None``
    if training was not stopped by this callback) and ``wait`` (epochs since the best).
    Use a new instance (or :meth:`reset`) for each run.
    """

    def __init__(self, monitor: str = "val_loss", *, mode: str = "min", patience: int = 3,
                 min_delta: float = 0.0, restore_best_weights: bool = True) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be a non-empty str, got {monitor!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if isinstance(patience, bool) or not isinstance(patience, int):
            raise TypeError(f"patience must be an int, got {type(patience).__name__}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1 (1 stops at the first epoch without "
                             f"improvement), got {patience}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, Real):
            raise TypeError(f"min_delta must be a real number, got {type(min_delta).__name__}")
        if not (math.isfinite(min_delta) and min_delta >= 0):
            raise ValueError(f"min_delta must be finite and >= 0, got {min_delta!r}")
        if not isinstance(restore_best_weights, bool):
            raise TypeError(f"restore_best_weights must be a bool, got {restore_best_weights!r}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best_weights = float(min_delta), restore_best_weights
        self.reset()

    def reset(self) -> None:
        """Forget everything seen, ready for a new run."""
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0
        self.best_state: dict[str, Tensor] | None = None
        self._last_epoch = 0

    def is_improvement(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta``."""
        if self.best is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < self.best
        return value - self.min_delta > self.best

    def update(self, epoch: int, value: float) -> bool:
        """Record ``value`` of the monitored metric at ``epoch`` (1, 2, ...); return True to stop.

        The decision logic alone, without a model: the book replays recorded curves with it.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch <= self._last_epoch:
            raise ValueError(f"epoch must be an int greater than the previous one "
                             f"({self._last_epoch}), got {epoch!r}; use a new EarlyStopping "
                             f"(or reset()) for each run")
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{self.monitor} at epoch {epoch} must be a real number, "
                            f"got {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{self.monitor} is {value} at epoch {epoch}: early stopping needs "
                             f"a finite metric (training has probably diverged)")
        if self.stopped_epoch is not None:
            raise RuntimeError(f"already stopped at epoch {self.stopped_epoch}")
        self._last_epoch = epoch
        if self.is_improvement(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool:
        if self.monitor not in metrics:
            raise KeyError(f"early stopping monitors {self.monitor!r}, which is not in the "
                           f"epoch's metrics; known: {sorted(metrics)}")
        stop = self.update(epoch, metrics[self.monitor])
        if self.restore_best_weights and self.best_epoch == epoch:
            self.best_state = snapshot_state(model)
        return stop

    def on_train_end(self, history: History, model: nn.Module) -> None:
        if self.restore_best_weights and self.best_state is not None:
            # load_state_dict copies into the model's own tensors, on whatever device they are
            model.load_state_dict(self.best_state)

    def summary(self) -> str:
        """One line: where training stopped, and the best epoch and value."""
        if self.best_epoch is None:
            return f"{self.monitor}: no epoch seen"
        stop = (f"stopped at epoch {self.stopped_epoch}" if self.stopped_epoch is not None
                else f"not stopped (last epoch {self._last_epoch})")
        return f"{stop}; best {self.monitor} {self.best:.4f} at epoch {self.best_epoch}"
