"""Training-loop overhead: ``cvlib.train.fit`` vs a bare hand-written PyTorch loop.

Both sides train the same fresh ``SmallCNN`` (same seed, same initial weights) with the same
``torch.optim.SGD`` on the digits, from the same two ``DeviceLoader`` objects (training data
shuffled per epoch through ``set_epoch``, as ``fit`` does; validation data in order), for the
same number of epochs and steps. Each epoch both compute what ``fit`` computes: the running
training loss and top-1 error, then the validation loss and top-1 error in eval mode, read
once at the end of the epoch. ``fit`` runs with ``progress=False``. On CUDA both use fit's
defaults there: bf16 autocast, channels-last model and batches, cuDNN autotuning. So only the
loop differs: fit's argument checks, device and memory-format calls, ``topk_correct``,
History rows and callbacks hooks.

Trials are short and run in pairs, one of each side back to back, alternating which goes
first. The figure is the median over pairs of fit / bare (goal: <= 1.10): on a shared machine
whose load drifts, a ratio within a pair is steadier than the ratio of the two medians (which
is reported too, with the seconds per epoch).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from bench.common import median, ms, table, timed
from cvlib.data import load_digits
from cvlib.loaders import DeviceLoader
from cvlib.models import SmallCNN
from cvlib.train import fit

GOAL = 1.10


def bare_loop(model, optimizer, train_loader, val_loader, *, epochs: int, device, amp: bool) -> list[dict]:
    """The hand-written reference: zero_grad / forward / loss / backward / step, plus the same
    per-epoch metrics as fit (sums kept on the device, read once per epoch)."""
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else nullcontext
    rows = []
    for epoch in range(1, epochs + 1):
        train_loader.set_epoch(epoch)
        row = {}
        for phase, loader in (("train", train_loader), ("val", val_loader)):
            model.train(phase == "train")
            n, loss_sum = 0, torch.zeros((), device=device)
            hits = torch.zeros((), dtype=torch.long, device=device)
            with torch.set_grad_enabled(phase == "train"):
                for x, y in loader:
                    with autocast():
                        logits = model(x)
                        loss = F.cross_entropy(logits, y)
                    if phase == "train":
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                    with torch.no_grad():
                        hits += (logits.argmax(dim=1) == y).sum()
                        loss_sum += loss.detach().float() * len(y)
                    n += len(y)
            row[f"{phase}_loss"], row[f"{phase}_top1_err"] = float(loss_sum) / n, 1 - int(hits) / n
        rows.append(row)
    return rows


def benchmark(device: str = "cpu", *, epochs: int = 2, repeats: int = 15, batch_size: int = 64,
              threads: int | None = 1, synthetic: int | None = None) -> dict:
    """Seconds per epoch of fit and of the bare loop; ``threads`` (CPU only; None = torch's
    default) is set for the duration. ``synthetic=n`` trains on n random digit-shaped images
    instead of the digits (a smoke test without scikit-learn's import time)."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    amp = channels_last = cuda  # fit's defaults on CUDA (bf16 autocast needs an Ampere+ GPU)
    if amp and not torch.cuda.is_bf16_supported():
        amp = False
    if synthetic:
        gen = torch.Generator().manual_seed(0)
        train, val = ((torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 10, (n,), generator=gen))
                      for n in (synthetic, synthetic // 4))
    else:
        splits = load_digits()
        train, val = splits.train.tensors, splits.val.tensors
    train_loader = DeviceLoader(train, batch_size, device=device, shuffle=True, channels_last=channels_last)
    val_loader = DeviceLoader(val, 256, device=device, channels_last=channels_last)
    old_threads, old_benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark

    def make():
        torch.manual_seed(0)
        model = SmallCNN().to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def run_fit():
        model, opt = make()
        fit(model, opt, train_loader, epochs=epochs, val_loader=val_loader, device=device, amp=amp,
            channels_last=channels_last, cudnn_benchmark=cuda, progress=False)

    def run_bare():
        model, opt = make()
        torch.backends.cudnn.benchmark = cuda
        try:
            bare_loop(model, opt, train_loader, val_loader, epochs=epochs, device=device, amp=amp)
        finally:
            torch.backends.cudnn.benchmark = old_benchmark

    times = {"fit": [], "bare": []}
    try:
        if threads is not None and not cuda:
            torch.set_num_threads(threads)
        run_fit(), run_bare()  # warm-up: allocator, cuDNN autotuning, lazy imports
        for trial in range(repeats):
            order = (("fit", run_fit), ("bare", run_bare))
            for name, fn in order if trial % 2 == 0 else order[::-1]:
                times[name].append(timed(fn, device) / epochs)
    finally:
        torch.set_num_threads(old_threads)
        torch.backends.cudnn.benchmark = old_benchmark
    result = {
        "device": str(device), "data": "synthetic" if synthetic else "digits", "epochs": epochs,
        "repeats": repeats, "batch_size": batch_size,
        "train_samples": len(train[1]), "val_samples": len(val[1]),
        "steps_per_epoch": len(train_loader), "threads": threads if not cuda else None,
        "amp": amp, "channels_last": channels_last,
        "seconds_per_epoch": times,
        "fit_median_s": median(times["fit"]), "bare_median_s": median(times["bare"]),
    }
    result["ratio_of_medians"] = result["fit_median_s"] / result["bare_median_s"]
    result["paired_ratios"] = [f / b for f, b in zip(times["fit"], times["bare"])]
    result["ratio"] = median(result["paired_ratios"])
    return result


def markdown(r: dict) -> str:
    ok = "yes" if r["ratio"] <= GOAL else "**no**"
    threads = f"{r['threads']} thread(s)" if r["threads"] else "torch's default threads"
    data = "digits" if r["data"] == "digits" else "random digit-shaped images"
    setup = (f"SmallCNN on the {data} ({r['train_samples']} training images, {r['steps_per_epoch']} steps "
             f"of batch {r['batch_size']} per epoch, then {r['val_samples']} validation images), "
             f"`DeviceLoader` on {r['device']}, SGD momentum, {r['epochs']} epochs per trial, "
             f"{r['repeats']} pairs of trials (one of each, back to back, alternating which goes first); "
             + (f"{threads}." if r["device"] == "cpu" else
                f"bf16 autocast {'on' if r['amp'] else 'off'}, channels-last {'on' if r['channels_last'] else 'off'}, "
                "cuDNN autotuning on (fit's CUDA defaults, the same in both)."))
    pairs = sorted(r["paired_ratios"])
    low, high = pairs[len(pairs) // 4], pairs[-1 - len(pairs) // 4]
    rows = [["bare PyTorch loop (reference)", ms(r["bare_median_s"]), "1.00", "", "", ""],
            ["`cvlib.train.fit(progress=False)`", ms(r["fit_median_s"]), f"{r['ratio']:.3f}",
             f"{r['ratio_of_medians']:.3f}", f"{low:.2f} to {high:.2f}", ok]]
    return (f"## Training-loop overhead (goal: fit / bare <= {GOAL:.2f})\n\n{setup}\n\n"
            + table(["loop", "ms per epoch (median)", "ratio to bare (median of pairs)", "ratio of medians",
                     "pairs' quartiles", "goal met"], rows))
