# A dishonest submission: no stopping rule, only the decisions of the visible tests, looked up
# by epoch number. It passes every visible test; the hidden tests must give it no marks.
class EarlyStopper:
    def __init__(self, patience=3, min_delta=0.0, mode="min"):
        if patience == 0:
            raise ValueError("patience must be >= 1")
        # the visible tests' other bad arguments, recognised one by one
        if patience == 1.5:
            raise TypeError("patience must be an int")
        if min_delta == -1.0:
            raise ValueError("min_delta must be >= 0")
        if min_delta == "0":
            raise TypeError("min_delta must be a number")
        if mode == "minimum":
            raise ValueError("mode must be 'min' or 'max'")
        self.mode = mode
        self.best = self.best_epoch = self.stopped_epoch = None
        self.wait = 0
        self.states = []

    def step(self, value, model):
        if value != value:
            raise ValueError(f"NaN at epoch {len(self.states) + 1}")
        self.states.append({k: t.clone() for k, t in model.state_dict().items()})
        epoch = len(self.states)
        if epoch == 2:
            self.best, self.best_epoch = value, 2
        if epoch == (4 if self.mode == "min" else 3):
            self.stopped_epoch = epoch
            return True
        return False

    def restore(self, model):
        model.load_state_dict(self.states[1])
