"""From-scratch kernels of cvlib vs their library twins, timed in the same run.

Each case runs the cvlib function and its torch/torchvision twin on the same inputs with
``torch.utils.benchmark.Timer.blocked_autorange`` (median time per call) on the CPU, once with
one thread and once with torch's default number of threads, and on CUDA too when asked. The
figure is cvlib / library (goal: <= 2 for the vectorized teaching code).

Optimizer steps are compared with ``torch.optim`` as it runs by default on that device (its
for-loop implementation on the CPU, ``foreach`` on CUDA) and, for information, with the other
one; both torch twins and cvlib update copies of the same parameters with the same gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
import torchvision
from torch.utils.benchmark import Timer

from bench.common import ms, table
from cvlib import activations, boxes, normalization, optimizers
from cvlib.models import SmallCNN

GOAL = 2.0


@dataclass
class Case:
    name: str
    size: str
    ours: Callable[[], object]  # cvlib
    reference: str  # what the main twin is
    theirs: Callable[[], object]
    others: dict[str, Callable[[], object]] = field(default_factory=dict)  # extra twins, for information
    why: str = ""  # known reason for a ratio above the goal


def _boxes(n: int, gen: torch.Generator, device) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen) * 500  # [N, 2] top-left corners in a 600 x 600 image
    wh = torch.rand(n, 2, generator=gen) * 90 + 10  # [N, 2] widths, heights in [10, 100)
    return torch.cat([xy, xy + wh], dim=1).to(device)  # [N, 4] xyxy


def _default_foreach(params: list[torch.Tensor]) -> bool:
    """Whether torch.optim's default (foreach=None) picks the foreach implementation here."""
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach

        return bool(_default_to_fused_or_foreach(params, differentiable=False, use_fused=False)[1])
    except Exception:  # private API: guess as torch documents it (foreach on CUDA only)
        return all(p.is_cuda for p in params)


def _optimizer_case(name: str, ours_cls, theirs_cls, kwargs: dict, base: list[torch.Tensor], size: str) -> Case:
    gen = torch.Generator().manual_seed(1)
    grads = [torch.randn(p.shape, generator=gen).to(p.device) * 1e-2 for p in base]

    def make(cls, **extra):
        params = [p.detach().clone().requires_grad_() for p in base]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt = cls(params, **kwargs, **extra)
        opt.step()  # create the state (momentum buffers, moments) before timing
        return opt.step

    default_foreach = _default_foreach(base)
    label = "foreach" if default_foreach else "for-loop"
    other = "for-loop" if default_foreach else "foreach"
    return Case(name, size, make(ours_cls), f"`torch.optim.{theirs_cls.__name__}` (default here: {label})",
                make(theirs_cls), {f"`torch.optim.{theirs_cls.__name__}(foreach={not default_foreach})` "
                                   f"({other})": make(theirs_cls, foreach=not default_foreach)},
                why="the same per-parameter loop of fused in-place ops (`mul_`, `addcmul_`, `addcdiv_`, "
                    "`lerp_`) as torch's for-loop version; `foreach` updates all tensors in a few kernels")


def cases(device: str | torch.device = "cpu", *, quick: bool = False) -> list[Case]:
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    n_iou, n_nms = (50, 100) if quick else (1000, 2000)
    b1, b2 = _boxes(n_iou, gen, device), _boxes(n_iou, gen, device)
    nb = _boxes(n_nms, gen, device)
    scores = torch.rand(n_nms, generator=gen).to(device)
    bn_shape = (4, 8, 8, 8) if quick else (64, 64, 32, 32)
    x = torch.randn(bn_shape, generator=gen).to(device)
    x_grad = x.clone().requires_grad_()
    dy = torch.randn(bn_shape, generator=gen).to(device)
    ours_bn = normalization.BatchNorm2d(bn_shape[1]).to(device)
    theirs_bn = torch.nn.BatchNorm2d(bn_shape[1]).to(device)
    logits = torch.randn((64, 100) if quick else (4096, 1000), generator=gen).to(device)
    torch.manual_seed(0)
    net = SmallCNN() if quick else torchvision.models.resnet18()
    base = [p.detach().to(device) for p in net.parameters()]
    n_params = sum(p.numel() for p in base)
    params = f"{'SmallCNN' if quick else 'ResNet-18'}: {len(base)} tensors, {n_params / 1e6:.2f} M"
    shape = "x".join(map(str, bn_shape))
    return [
        Case("box IoU", f"{n_iou} x {n_iou} boxes", lambda: boxes.box_iou(b1, b2),
             "`torchvision.ops.box_iou`", lambda: torchvision.ops.box_iou(b1, b2),
             why="the same tensor code as torchvision's, the intersection computed in place, plus "
                 "a guard against empty unions"),
        Case("NMS", f"{n_nms} boxes, IoU 0.5", lambda: boxes.nms(nb, scores, 0.5),
             "`torchvision.ops.nms`", lambda: torchvision.ops.nms(nb, scores, 0.5),
             why="exact greedy NMS in blocks of 128 boxes: one [K, 128] IoU matrix against the boxes "
                 "kept so far, then a fixed-point iteration inside the block (a few host reads per "
                 "block, none per box)"),
        Case("BatchNorm2d forward (train)", shape, lambda: ours_bn(x),
             "`torch.nn.BatchNorm2d`", lambda: theirs_bn(x),
             {"`F.batch_norm`": lambda: F.batch_norm(x, theirs_bn.running_mean, theirs_bn.running_var,
                                                    theirs_bn.weight, theirs_bn.bias, training=True)},
             why="mean, centre, norm and one fused multiply-add: four passes over the tensor "
                 "(torch's is one fused kernel)"),
        Case("BatchNorm2d forward + backward", shape, lambda: ours_bn(x_grad).backward(dy),
             "`torch.nn.BatchNorm2d`", lambda: theirs_bn(x_grad).backward(dy),
             why="hand-written backward (`BatchNormFunction`): two sums and two fused multiply-adds "
                 "plus one temporary (torch's backward is one fused kernel)"),
        _optimizer_case("SGD step (momentum 0.9)", optimizers.SGD, torch.optim.SGD,
                        {"lr": 1e-3, "momentum": 0.9}, base, params),
        _optimizer_case("Adam step", optimizers.Adam, torch.optim.Adam, {"lr": 1e-3}, base, params),
        Case("softmax", "x".join(map(str, logits.shape)) + ", dim 1",
             lambda: activations.softmax(logits, dim=1), "`torch.softmax`",
             lambda: torch.softmax(logits, dim=1),
             why="max, subtract, in-place exp, sum, in-place divide: four passes, hand-written "
                 "backward (torch's is one fused kernel)"),
    ]


def _median_s(fn: Callable[[], object], threads: int, min_run_time: float) -> float:
    timer = Timer("fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def benchmark(device: str = "cpu", *, quick: bool = False, min_run_time: float = 0.5,
              threads: tuple[int, ...] | None = None) -> dict:
    """Median seconds per call of every case; settings: CPU with each of ``threads`` (default:
    1 and torch's default), plus CUDA when ``device`` is cuda."""
    default_threads = torch.get_num_threads()
    threads = threads or tuple(dict.fromkeys((1, default_threads)))
    settings = [("cpu", t) for t in threads]
    if torch.device(device).type == "cuda":
        settings.append((str(device), 1))
    rows = {}
    for dev, t in settings:
        key = f"cpu, {t} thread{'s' if t > 1 else ''}" if dev == "cpu" else dev
        for case in cases(dev, quick=quick):
            row = rows.setdefault(case.name, {"size": case.size, "reference": case.reference, "why": case.why,
                                              "settings": {}})
            timings = {"cvlib": _median_s(case.ours, t, min_run_time),
                       "reference": _median_s(case.theirs, t, min_run_time)}
            timings.update({name: _median_s(fn, t, min_run_time) for name, fn in case.others.items()})
            timings["ratio"] = timings["cvlib"] / timings["reference"]
            timings["others_ratio"] = {name: timings["cvlib"] / timings[name] for name in case.others}
            row["settings"][key] = timings
    return {"device": str(device), "default_threads": default_threads, "min_run_time_s": min_run_time,
            "settings": [f"cpu, {t} thread{'s' if t > 1 else ''}" if d == "cpu" else d for d, t in settings],
            "cases": rows}


def markdown(r: dict) -> str:
    settings = r["settings"]
    cpu = [s for s in settings if s.startswith("cpu")]  # the goal is for the CPU; CUDA for information
    header = ["kernel", "size", "reference", *(f"ratio, {s}" for s in settings), "goal met (CPU)"]
    rows, misses, extra = [], [], []
    for name, row in r["cases"].items():
        cells = []
        for s in settings:
            t = row["settings"][s]
            cells.append(f"{t['ratio']:.2f} ({ms(t['cvlib'])} vs {ms(t['reference'])} ms)")
            for other, ratio in t["others_ratio"].items():
                extra.append(f"{name}, {s}: cvlib / {other} = {ratio:.2f} ({ms(t[other])} ms)")
        worst = max(row["settings"][s]["ratio"] for s in cpu)
        ok = worst <= GOAL
        if not ok:
            misses.append(f"- {name}: up to {worst:.1f}x on the CPU; {row['why'] or 'no obvious reason'}.")
        rows.append([name, row["size"], row["reference"], *cells, "yes" if ok else "**no**"])
    text = (f"## From-scratch kernels vs library (goal: cvlib / library <= {GOAL:.0f})\n\n"
            "Median time per call from `torch.utils.benchmark.Timer.blocked_autorange` "
            f"(at least {r['min_run_time_s']} s of calls per cell); cells read `ratio (cvlib vs library ms)`. "
            f"Threads: one, and torch's default here ({r['default_threads']})"
            + ("; the CUDA column is for information, the goal is for the CPU" if len(cpu) < len(settings) else "")
            + ".\n\n" + table(header, rows))
    if misses:
        text += "\n\nMissing the goal, and why:\n\n" + "\n".join(misses)
    if extra:
        text += "\n\nOther library variants, for information:\n\n" + "\n".join(f"- {e}" for e in extra)
    return text
