"""The course's benchmark suite: one command, one Markdown table and one JSON file.

    python bench/run.py                        # everything on the CPU (about 13 min here + the tests)
    python bench/run.py --skip-tests           # ... without timing the test command
    python bench/run.py --device cuda          # on the GPU: bench/results/cuda-<gpu>.md
    python bench/run.py --only loop,kernels --quick   # a smoke test with tiny sizes

Parts (``--only``, comma-separated; default all): ``loop`` (cvlib.train.fit vs a bare loop),
``kernels`` (cvlib's from-scratch kernels vs torch/torchvision), ``loader`` (DeviceLoader vs
DataLoader), ``fastpath`` (fit's GPU switches one at a time, bench/fastpath.py), ``notebooks`` (every book and solution notebook in a fresh kernel), ``tests``
(the whole ``python -m pytest``; left out by ``--skip-tests``). Every figure is a ratio to a
reference measured in the same run. Results go to ``bench/results/<device>.md`` and ``.json``
(``cpu`` or ``cuda-<gpu name>``; ``-quick`` and the parts are added to the name unless the
run is full-size and complete).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `python bench/run.py` puts only bench/ on the path

import torch  # noqa: E402
import torchvision  # noqa: E402

from bench import fastpath, kernels, loader, loop, notebooks  # noqa: E402
from bench.common import table  # noqa: E402

PARTS = ("loop", "kernels", "loader", "fastpath", "notebooks", "tests")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> dict:
    cuda = torch.device(device).type == "cuda"
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "usable_cpus": loader.usable_cpus(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    return info


def slug(device: str) -> str:
    if torch.device(device).type != "cuda":
        return "cpu"
    return "cuda-" + re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {','.join(PARTS)}")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at a time (default 1, for clean timings)")
    parser.add_argument("--skip-tests", action="store_true", help="do not time the whole test command")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    parser.add_argument("--note", default="", help="free text recorded with the machine (e.g. 'shared machine')")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="folder of the result files")
    parser.add_argument("--name", help="file name without extension (default: from the device)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="measure nothing: rewrite the Markdown table of a saved JSON next to it")
    args = parser.parse_args(argv)
    if args.render:
        return args
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if args.skip_tests and "tests" in args.parts:
        args.parts.remove("tests")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    if torch.device(args.device).type not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda, got {args.device}")
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    return args


def say(message: str) -> None:
    print(message, flush=True)


def _shown(path: Path) -> str:
    """A path as recorded in the results: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def run_parts(args: argparse.Namespace, log=say) -> dict:
    """Run the chosen parts; returns {"machine", "args", "parts": {name: result}, "seconds": {...}}."""
    dev, quick = args.device, args.quick
    jobs = {
        "loop": lambda: loop.benchmark(dev, **(dict(epochs=1, repeats=1, synthetic=256) if quick else {})),
        "kernels": lambda: kernels.benchmark(dev, quick=quick, **(dict(min_run_time=0.001) if quick else {})),
        "loader": lambda: loader.benchmark(dev, **(dict(images=512, batch_size=256, epochs=1, workers=1)
                                                    if quick else {})),
        "fastpath": lambda: fastpath.run(dev, quick=quick),
        "notebooks": lambda: notebooks.benchmark(dev, jobs=args.jobs, progress=log),
        "tests": lambda: notebooks.test_command(),  # in this process's environment, as you would type it
    }
    out = {"machine": machine(dev), "args": {k: _shown(v) if isinstance(v, Path) else v
                                            for k, v in vars(args).items()},
           "parts": {}, "seconds": {}}
    for part in PARTS:
        if part not in args.parts:
            continue
        log(f"[{part}] ...")
        start = time.perf_counter()
        out["parts"][part] = jobs[part]()
        out["seconds"][part] = time.perf_counter() - start
        log(f"[{part}] {out['seconds'][part]:.1f} s")
    return out


def markdown(result: dict) -> str:
    m, args, parts = result["machine"], result["args"], result["parts"]
    command = shlex.join(["python", "bench/run.py", *result.get("argv", [])])
    lines = [f"# Benchmarks: {m['gpu'] or 'CPU'}{' (quick smoke test, not a measurement)' if args['quick'] else ''}",
             "",
             f"- date: {m['date']}",
             f"- command: `{command}`",
             f"- CPU: {m['cpu']}, {m['cpu_count']} cores ({m['usable_cpus']} usable), "
             f"torch threads {m['torch_threads']}",
             f"- GPU: {m['gpu'] or 'none used'}" + (f" (CUDA {m['cuda']})" if m["cuda"] else ""),
             f"- software: torch {m['torch']}, torchvision {m['torchvision']}, Python {m['python']}, {m['platform']}",
             f"- load average at start: {', '.join(f'{x:.2f}' for x in m['load_average_at_start'] or [])}"
             + (f"; {args['note']}" if args["note"] else ""),
             "", "Every figure is a ratio to a reference measured in the same run; absolute times depend "
             "on the machine and its load.", ""]
    seconds = [[p, f"{s:.1f}"] for p, s in result["seconds"].items()]
    lines += ["Time per part (seconds):", "", table(["part", "seconds"], seconds), ""]
    for name, module in (("loop", loop), ("kernels", kernels), ("loader", loader), ("fastpath", fastpath),
                         ("notebooks", notebooks)):
        if name in parts:
            if name == "fastpath":
                lines += ["## The GPU fast path, one switch at a time (ratios to the first row)", ""]
            lines += [module.markdown(parts[name]), ""]
    if "tests" in parts:
        t = parts["tests"]
        versus = (f", {t['seconds'] / parts['notebooks']['serial_total_s']:.2f} x the notebooks' serial sum"
                  if "notebooks" in parts else "")
        lines += ["## Test command", "", f"`{' '.join(t['command'])}` from the repository root: {t['seconds']:.1f} s "
                  f"(exit {t['returncode']}; `{t['summary']}`){versus}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Path:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.render:
        md = args.render.with_suffix(".md")
        md.write_text(markdown(json.loads(args.render.read_text())))
        print(f"wrote {md}")
        return md
    result = run_parts(args)
    result["argv"] = argv
    name = args.name or (slug(args.device) + ("-quick" if args.quick else "")
                         + ("" if set(args.parts) >= set(PARTS) - {"tests"} else "-" + "-".join(args.parts)))
    args.out.mkdir(parents=True, exist_ok=True)
    md, js = args.out / f"{name}.md", args.out / f"{name}.json"
    md.write_text(markdown(result))
    js.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {md.relative_to(REPO) if md.is_relative_to(REPO) else md} and {js.name}")
    return md


if __name__ == "__main__":
    main()
