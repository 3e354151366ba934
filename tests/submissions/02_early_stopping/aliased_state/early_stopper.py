# A typical mistake: the stopping rule is right, but the "snapshot" is model.state_dict()
# itself, whose tensors ARE the model's parameters and buffers. Training changes them in place,
# so restore() puts back the current weights, not the best ones. Must lose the restore points.
import math


class EarlyStopper:
    def __init__(self, patience=3, min_delta=0.0, mode="min"):
        if isinstance(patience, bool) or not isinstance(patience, int):
            raise TypeError("patience must be an int")
        if patience < 1:
            raise ValueError("patience must be >= 1")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)):
            raise TypeError("min_delta must be a number")
        if not math.isfinite(min_delta) or min_delta < 0:
            raise ValueError("min_delta must be finite and >= 0")
        if mode not in ("min", "max"):
            raise ValueError("mode must be 'min' or 'max'")
        self.patience, self.min_delta, self.mode = patience, min_delta, mode
        self.best = self.best_epoch = self.stopped_epoch = self.best_state = None
        self.wait = self.epoch = 0

    def step(self, value, model):
        if not math.isfinite(value):
            raise ValueError(f"metric is {value} at epoch {self.epoch + 1}")
        self.epoch += 1
        sign = 1 if self.mode == "min" else -1
        if self.best is None or sign * (value - self.best) + self.min_delta < 0:
            self.best, self.best_epoch, self.wait = value, self.epoch, 0
            self.best_state = model.state_dict()          # BUG: a reference, not a copy
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = self.epoch
            return True
        return False

    def restore(self, model):
        if self.best_state is None:
            raise RuntimeError("nothing to restore")
        model.load_state_dict(self.best_state)
