"""cvlib.train: the loop learns, reports consistent metrics, honours callbacks, refuses bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cvlib.data import load_digits
from cvlib.device import seed_everything
from cvlib.topk import topk_error
from cvlib.models import SmallCNN
from cvlib.train import (Callback, Checkpoint, History, LRSchedule, ProgressBar, evaluate, fit,
                         load_checkpoint, prepare)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _loaders(splits, gen):
    return (DataLoader(splits.train, batch_size=64, shuffle=True, generator=gen),
            DataLoader(splits.val, batch_size=128))


def _train_small_cnn(digits, device, epochs, **kwargs):
    gen = seed_everything(0)
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train_loader, val_loader = _loaders(digits, gen)
    history = fit(model, opt, train_loader, epochs=epochs, val_loader=val_loader, device=device,
                  progress=False, **kwargs)
    return model, val_loader, history


def test_fit_learns_digits_and_history_is_consistent(digits):
    model, val_loader, history = _train_small_cnn(digits, "cpu", 4, topk=(1, 3))
    assert len(history) == 4 and history.stopped_by is None
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_top1_err"][-1] < 0.2  # chance is 0.9
    for row in history.rows:
        assert row["val_top3_err"] <= row["val_top1_err"]
    # the last row's validation metrics equal an independent evaluation of the final model
    x, y = digits.val.tensors
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert history["val_top1_err"][-1] == pytest.approx(topk_error(logits, y, 1).item(), abs=1e-6)
    again = evaluate(model, val_loader, torch.device("cpu"), topk=(1,))
    assert again["top1_err"] == pytest.approx(history["val_top1_err"][-1], abs=1e-6)
    assert "val_top3_err" in history.table() and "seconds" not in history.table()


def test_fit_is_reproducible_with_a_seed(digits):
    runs = []
    for _ in range(2):
        gen = seed_everything(7)
        model = SmallCNN(width=8)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        train_loader, _ = _loaders(digits, gen)
        runs.append(fit(model, opt, train_loader, epochs=2, device="cpu", progress=False)["train_loss"])
    assert runs[0] == runs[1]


class StopAt(Callback):
    def __init__(self, epoch):
        self.epoch, self.seen, self.ended = epoch, [], False

    def on_epoch_end(self, epoch, metrics, model):
        self.seen.append(metrics["epoch"])
        return epoch == self.epoch

    def on_train_end(self, history, model):
        self.ended = len(history)


def test_callbacks_stop_training_and_are_told_the_end(digits):
    gen = seed_everything(0)
    model = SmallCNN(width=8)
    cb, passive = StopAt(2), StopAt(99)
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), _loaders(digits, gen)[0],
                  epochs=5, device="cpu", callbacks=[passive, cb], progress=False)
    assert len(history) == 2 and history.stopped_by == "StopAt"
    assert cb.seen == passive.seen == [1, 2] and cb.ended == passive.ended == 2


def test_scheduler_is_stepped_per_epoch(digits):
    gen = seed_everything(0)
    model = SmallCNN(width=8)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    history = fit(model, opt, _loaders(digits, gen)[0], epochs=3, device="cpu",
                  callbacks=[LRSchedule(sched)], progress=False)
    assert history["lr"] == pytest.approx([1.0, 0.1, 0.01])


def test_progress_output_goes_through_tqdm(digits, capsys):
    gen = seed_everything(0)
    model = SmallCNN(width=4)
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), _loaders(digits, gen)[0],
        epochs=1, device="cpu", progress=True)
    out = capsys.readouterr().out
    assert "cvlib: using cpu" in out and "epoch 1/1" in out and "train_loss" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_amp_on_cpu_is_refused_before_training():
    model = nn.Linear(4, 2)
    loader = DataLoader(TensorDataset(torch.zeros(8, 4), torch.zeros(8, dtype=torch.long)), batch_size=4)
    with pytest.raises(ValueError, match="amp=True .* needs a CUDA device, got cpu"):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, epochs=1, device="cpu",
            amp=True, progress=False)


@pytest.mark.parametrize("kwargs,match", [
    ({"epochs": 0}, "epochs must be a positive int"),
    ({"epochs": 1, "topk": ()}, "topk must be a non-empty"),
    ({"epochs": 1, "topk": (0,)}, "topk must be a non-empty"),
])
def test_bad_arguments(kwargs, match):
    model = nn.Linear(4, 2)
    loader = DataLoader(TensorDataset(torch.zeros(8, 4), torch.zeros(8, dtype=torch.long)), batch_size=4)
    with pytest.raises(ValueError, match=match):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, device="cpu", progress=False, **kwargs)


def _loader(x, y):
    return DataLoader(TensorDataset(x, y), batch_size=4)


def test_bad_input_is_named_before_it_fails_deep_inside_torch():
    model = nn.Linear(4, 2)
    labels = torch.zeros(8, dtype=torch.long)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got NoneType"):
        fit(model, None, _loader(torch.zeros(8, 4), labels), epochs=1, device="cpu", progress=False)
    other = nn.Linear(4, 2)
    with pytest.raises(ValueError, match="holds none of the model's trainable parameters"):
        fit(model, torch.optim.SGD(other.parameters(), lr=0.1), _loader(torch.zeros(8, 4), labels), epochs=1,
            device="cpu", progress=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"labels must be class indices.*torch.float32 of shape \(4,\).*y.long\(\)"):
        fit(model, opt, _loader(torch.zeros(8, 4), labels.float()), epochs=1, device="cpu", progress=False)
    with pytest.raises(RuntimeError) as info:  # torch's own error, with what the batch was
        fit(model, opt, _loader(torch.zeros(8, 1, 8, 8), labels), epochs=1, device="cpu", progress=False)
    assert "the first batch was torch.float32 of shape (4, 1, 8, 8)" in "\n".join(info.value.__notes__)
    with pytest.raises(ValueError, match=r"must return logits \[B, C\] for a batch of 4; it returned shape \(4, 2, 2\)"):
        fit(model, opt, _loader(torch.zeros(8, 2, 4), labels), epochs=1, device="cpu", progress=False)
    assert model.weight.grad is None  # nothing was trained on the way


def test_fit_trains_a_subset_of_the_parameters():  # fine-tuning: the optimizer may hold only some
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    before = model[0].weight.detach().clone()
    fit(model, torch.optim.SGD(model[1].parameters(), lr=0.1), _loader(torch.randn(8, 4), torch.zeros(8, dtype=torch.long)),
        epochs=1, device="cpu", progress=False)
    assert torch.equal(model[0].weight, before)


def test_empty_loader_is_an_error():
    model = nn.Linear(4, 2)
    loader = DataLoader(TensorDataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), batch_size=4)
    with pytest.raises(ValueError, match="yielded no samples"):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, epochs=1, device="cpu", progress=False)


def test_history_unknown_key():
    h = History()
    h.append({"epoch": 1, "train_loss": 0.5})
    with pytest.raises(KeyError, match="no metric 'val_loss'"):
        h["val_loss"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_on_cuda_with_bf16_autocast(digits):
    model, _, history = _train_small_cnn(digits, "cuda", 3, amp=True)
    assert next(model.parameters()).device.type == "cuda"
    assert history["val_top1_err"][-1] < 0.3


def test_scheduler_stepped_per_step_for_warm_up():
    x, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    loader = DataLoader(TensorDataset(x, y), batch_size=10)  # 4 steps per epoch
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(o.param_groups[0]["lr"]))
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 6))
    history = fit(model, opt, loader, epochs=2, device="cpu", callbacks=[LRSchedule(warm, interval="step")],
                  progress=False)
    assert seen == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0, 1.0, 1.0])
    assert history["lr"] == pytest.approx([4 / 6, 1.0])  # the lr of each epoch's last step


def test_reduce_lr_on_plateau_uses_val_loss():
    x, y = torch.zeros(8, 4), torch.zeros(8, dtype=torch.long)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    model = nn.Linear(4, 2)
    for p in model.parameters():
        p.register_hook(torch.zeros_like)  # nothing moves, so the val loss never improves
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    history = fit(model, opt, loader, epochs=4, val_loader=loader, device="cpu",
                  callbacks=[LRSchedule(plateau)], progress=False)
    assert history["lr"] == pytest.approx([1.0, 1.0, 0.5, 0.25])  # cut after each epoch without progress
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        fit(model, opt, loader, epochs=1, device="cpu", callbacks=[LRSchedule(plateau)], progress=False)
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        LRSchedule(plateau, interval="step")
    with pytest.raises(ValueError, match="interval must be 'epoch' or 'step', got 'batch'"):
        LRSchedule(plateau, interval="batch")
    with pytest.raises(TypeError, match="scheduler must be a torch.optim.lr_scheduler schedule, got SGD"):
        LRSchedule(opt)


# --- speed switches, checkpoints -----------------------------------------------------------

def _tiny():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    data = TensorDataset(torch.randn(24, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
                         torch.arange(24) % 3)
    return model, DataLoader(data, batch_size=8)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusals")
@pytest.mark.parametrize("kwargs,match", [
    ({"cudnn_benchmark": True}, "cudnn_benchmark=True needs a CUDA device, got cpu"),
    ({"amp": "bf16"}, "amp must be True, False or None"),
    ({"channels_last": 1}, "channels_last must be True, False or None"),
])
def test_speed_switches_refuse_what_cannot_work(kwargs, match):
    model, loader = _tiny()
    with pytest.raises(ValueError, match=match):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, epochs=1, device="cpu",
            progress=False, **kwargs)


def test_compile_without_a_compiler_says_so(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    model, loader = _tiny()
    with pytest.raises(ValueError, match="compile=True on the CPU needs a C\\+\\+ compiler"):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, epochs=1, device="cpu",
            compile=True, progress=False)


def test_defaults_on_cpu_change_nothing_and_channels_last_trains_alike():
    runs = []
    for kwargs in ({}, {"amp": False, "channels_last": False}, {"channels_last": True}):
        torch.manual_seed(0)
        model, loader = _tiny()
        runs.append(fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, epochs=2,
                        device="cpu", progress=False, **kwargs))
    assert runs[0].table(digits=7) == runs[1].table(digits=7)
    assert runs[2]["train_loss"] == pytest.approx(runs[0]["train_loss"], rel=1e-5)


def test_checkpoint_is_written_every_epoch_and_restores(tmp_path):
    torch.manual_seed(0)
    model, loader = _tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    path = tmp_path / "run" / "ck.pt"
    history = fit(model, opt, loader, epochs=2, device="cpu", callbacks=[LRSchedule(sched), Checkpoint(path)],
                  progress=False)
    assert [p.name for p in path.parent.iterdir()] == ["ck.pt"]  # no temporary file left
    fresh, _ = _tiny()
    fresh_opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    fresh_sched = torch.optim.lr_scheduler.StepLR(fresh_opt, 1, gamma=0.5)
    restored = load_checkpoint(path, fresh, fresh_opt, fresh_sched)
    assert restored.rows == history.rows and fresh_sched.last_epoch == 2
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert fresh_opt.state_dict()["state"].keys() == opt.state_dict()["state"].keys()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt", fresh)
    with pytest.raises(ValueError, match="no scheduler state"):
        fit(fresh, fresh_opt, loader, epochs=1, device="cpu", callbacks=[Checkpoint(path)], progress=False)
        load_checkpoint(path, fresh, fresh_opt, fresh_sched)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_defaults_are_the_fast_path_and_compile_trains(digits):
    from cvlib.loaders import CropFlip, make_loader

    seed_everything(0, deterministic=False)  # turns cuDNN autotuning on ...
    torch.backends.cudnn.benchmark = False  # ... and this turns it off; fit must restore that
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train = make_loader(digits.train, 64, device="cuda", shuffle=True, transform=CropFlip(1, flip=False))
    val = make_loader(digits.val, 256, device="cuda")
    history = fit(model, opt, train, val_loader=val, epochs=3, device="cuda", compile=True, progress=False)
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert history["val_top1_err"][-1] < 0.3
    assert torch.backends.cudnn.benchmark is False  # restored after fit


def test_epoch_metrics_follow_the_topk_rule_and_count_nan_rows_as_misses():
    from cvlib.topk import topk_correct

    logits = torch.tensor([[3.0, 1.0, 2.0], [1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [float("nan"), 0.0, 1.0]])
    target = torch.tensor([0, 1, 2, 1])
    loader = [(logits, target)]
    model = nn.Identity()
    got = evaluate(model, loader, "cpu", topk=(1, 2, 3), loss_fn=lambda out, y: out.sum() * 0)
    for k in (1, 2, 3):  # the three finite rows by the library rule; the NaN row is a miss
        hits = int(topk_correct(logits[:3], target[:3], k).sum())
        assert got[f"top{k}_err"] == pytest.approx(1 - hits / 4)


# --- the callback forms of schedules, checkpoints and progress ---------------------------------

class Recorder(Callback):
    """Every hook fit calls, in order."""

    def __init__(self):
        self.calls = []

    def on_train_start(self, run):
        self.calls.append(("train_start", run.epochs, len(run.history)))

    def on_epoch_start(self, epoch):
        self.calls.append(("epoch_start", epoch))

    def on_step_end(self, loss):
        assert loss.ndim == 0 and not loss.requires_grad
        self.calls.append(("step",))

    def on_epoch_end(self, epoch, metrics, model):
        self.calls.append(("epoch_end", epoch))

    def on_train_end(self, history, model):
        self.calls.append(("train_end", len(history)))


def test_hooks_are_called_in_order_with_one_step_end_per_optimizer_step():
    loader = _loader(torch.randn(12, 4), torch.zeros(12, dtype=torch.long))  # 3 steps per epoch
    model, rec = nn.Linear(4, 2), Recorder()
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, epochs=2, device="cpu",
        callbacks=[rec], progress=False)
    epoch = lambda e: [("epoch_start", e), ("step",), ("step",), ("step",), ("epoch_end", e)]  # noqa: E731
    assert rec.calls == [("train_start", 2, 0), *epoch(1), *epoch(2), ("train_end", 2)]


def test_checkpoint_refuses_a_schedule_it_would_save_stale(tmp_path):
    model, loader = _tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    with pytest.raises(ValueError, match="put LRSchedule before Checkpoint"):
        fit(model, opt, loader, epochs=1, device="cpu", progress=False,
            callbacks=[Checkpoint(tmp_path / "ck.pt"), LRSchedule(sched)])
    with pytest.raises(ValueError, match="saves one LRSchedule's state; callbacks hold 2"):
        fit(model, opt, loader, epochs=1, device="cpu", progress=False,
            callbacks=[LRSchedule(sched), LRSchedule(sched), Checkpoint(tmp_path / "ck.pt")])
    assert not (tmp_path / "ck.pt").exists() and sched.last_epoch == 0  # refused before training


def test_progress_bar_as_a_callback_prints_each_epoch(digits, capsys):
    gen = seed_everything(0)
    model = SmallCNN(width=4)
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), _loaders(digits, gen)[0],
        epochs=2, device="cpu", progress=False, callbacks=[ProgressBar()])
    out = capsys.readouterr().out
    assert "cvlib: using cpu" not in out  # progress=False: pick_device is quiet
    assert "epoch 1/2  train_loss" in out and "epoch 2/2  train_loss" in out


def test_prepare_puts_the_model_on_the_device_and_leaves_cpu_switches_off():
    model = nn.Linear(4, 2)
    prep = prepare(model, "cpu", verbose=False)
    assert prep.train_net is prep.eval_net is prep.model is model
    assert prep.device == torch.device("cpu")
    assert (prep.amp, prep.channels_last, prep.cudnn_benchmark) == (False, False, False)
    before = torch.backends.cudnn.benchmark
    with prep.cudnn_benchmark_flag():
        assert torch.backends.cudnn.benchmark == before  # only CUDA runs change the global flag
    with pytest.raises(ValueError, match="compile must be True, False or None"):
        prepare(model, "cpu", compile="yes", verbose=False)


def test_train_one_epoch_calls_after_step_once_per_step():
    model, calls = nn.Linear(4, 2), []
    loader = _loader(torch.randn(12, 4), torch.zeros(12, dtype=torch.long))
    from cvlib.train import train_one_epoch
    metrics = train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), "cpu",
                              after_step=lambda: calls.append(1))
    assert len(calls) == 3 and set(metrics) == {"loss", "top1_err"}


def test_a_duck_typed_callback_needs_only_the_two_old_hooks():
    class Stopper:  # not a Callback subclass: on_epoch_end and on_train_end are enough
        def on_epoch_end(self, epoch, metrics, model):
            return epoch == 2

        def on_train_end(self, history, model):
            self.ended = len(history)

    model, stopper = nn.Linear(4, 2), Stopper()
    loader = _loader(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, epochs=5, device="cpu",
                  callbacks=[stopper], progress=False)
    assert len(history) == 2 and history.stopped_by == "Stopper" and stopper.ended == 2
