"""Does the notebook check still mean something? Plant a real bug in cvlib, re-check the book.

    python bench/regressions.py                 # every regression below, then the clean baseline
    python bench/regressions.py --only eval     # one (names: see REGRESSIONS)

The stored outputs are checked exactly (nbval) under another CPU code path than the one that
made them (``cvcourse.numerics``). That would be worthless if the check were so loose, or the
printed numbers so coarse, that a real bug left them unchanged. For each regression this copies
``cvlib/`` to a temporary folder, changes one line there (the repository is not touched), puts
the copy first on the kernels' ``PYTHONPATH`` and runs the repository's own test command on the
chapters that use the changed code: ``python -m pytest NOTEBOOK -n0``. A regression is *caught*
when nbval fails; the cells that failed are listed. The same run without a change (the baseline)
must pass, so that what fails is the bug, not the machine.

Results: ``bench/results/cpu-regressions.md`` and ``.json``. ``tests/test_numerics.py`` runs the
cheapest one (``eval``) in the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `python bench/regressions.py` puts only bench/ on the path

from bench.common import table  # noqa: E402


@dataclass(frozen=True)
class Regression:
    """One plausible bug: in ``cvlib/<file>``, the text ``old`` (which must occur exactly once)
    becomes ``new``; ``notebooks`` are the chapters expected to notice."""

    name: str
    what: str
    file: str
    old: str
    new: str
    notebooks: tuple[str, ...]


REGRESSIONS = (
    Regression("eval", "`model.eval()` forgotten in `cvlib.train.evaluate` (BatchNorm keeps using batch statistics)",
               "train.py", '    model.eval()\n    return _run_epoch(', '    return _run_epoch(',
               ("book/01_topk.ipynb",)),
    Regression("momentum", "momentum dropped from `cvlib.optimizers.SGD` (the buffer is never used)",
               "optimizers.py", '        mu, wd = group["momentum"], group["weight_decay"]\n',
               '        mu, wd = 0.0, group["weight_decay"]\n', ("book/08_optimizers.ipynb",)),
    Regression("weight-decay", "weight decay halved in `cvlib.optimizers.SGD` (`0.5 * weight_decay`)",
               "optimizers.py", '            grad = grad.add(p, alpha=wd)  # g + lambda theta\n',
               '            grad = grad.add(p, alpha=0.5 * wd)  # g + lambda theta\n',
               ("book/08_optimizers.ipynb",)),
)
BY_NAME = {r.name: r for r in REGRESSIONS}


def plant(regression: Regression, folder: Path) -> Path:
    """A copy of cvlib/ in ``folder`` with the regression applied; returns the folder to put on
    PYTHONPATH. Refuses when the line to change is not there exactly once (the code moved)."""
    shutil.copytree(REPO / "cvlib", folder / "cvlib", ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / "cvlib" / regression.file
    text = path.read_text()
    count = text.count(regression.old)
    if count != 1:
        raise RuntimeError(f"regression {regression.name!r}: expected the text to change exactly once in "
                           f"cvlib/{regression.file}, found it {count} times; update bench/regressions.py")
    path.write_text(text.replace(regression.old, regression.new))
    return folder


def check(notebooks: tuple[str, ...], overlay: Path | None = None, first_failure: bool = False) -> dict:
    """Run the test command on ``notebooks`` (cvlib taken from ``overlay`` when given); with
    ``first_failure``, stop at the first cell that fails (enough to show the bug is caught)."""
    env = dict(os.environ)
    if overlay is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(overlay), *filter(None, [env.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "pytest", *notebooks, "-n0", "-q", *(["-x"] if first_failure else [])]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    failed = sorted(set(re.findall(r"^FAILED (\S+::Cell \d+)", proc.stdout, re.M)),
                    key=lambda s: (s.split("::")[0], int(s.rsplit(" ", 1)[1])))
    summary = [line for line in proc.stdout.strip().splitlines() if line.strip()]
    return {"returncode": proc.returncode, "failed_cells": failed, "seconds": seconds,
            "summary": re.sub(r"\x1b\[[0-9;]*m", "", summary[-1]) if summary else proc.stderr[-300:]}


def run(names: list[str], *, baseline: bool = True, first_failure: bool = False, log=print) -> dict:
    results = {}
    for name in names:
        r = BY_NAME[name]
        with tempfile.TemporaryDirectory() as tmp:
            outcome = check(r.notebooks, plant(r, Path(tmp)), first_failure)
        outcome["caught"] = outcome["returncode"] != 0 and bool(outcome["failed_cells"])
        results[name] = {"what": r.what, "notebooks": list(r.notebooks), **outcome}
        log(f"  {name}: {'caught' if outcome['caught'] else 'NOT CAUGHT'} ({len(outcome['failed_cells'])} cells, "
            f"{outcome['seconds']:.0f} s)")
    clean = None
    if baseline:
        notebooks = tuple(sorted({nb for n in names for nb in BY_NAME[n].notebooks}))
        clean = {"notebooks": list(notebooks), **check(notebooks)}
        log(f"  baseline (no change): exit {clean['returncode']} ({clean['summary']})")
    return {"regressions": results, "baseline": clean}


def markdown(result: dict, cpu: str) -> str:
    rows = [[f"`{n}`", r["what"], ", ".join(f"`{nb}`" for nb in r["notebooks"]),
             "**caught**" if r["caught"] else "**not caught**",
             ", ".join(c.split("::")[1] for c in r["failed_cells"]) or "none"]
            for n, r in result["regressions"].items()]
    lines = ["# Regressions the notebook check catches", "",
             f"- date: {result['date']}", f"- CPU: {cpu}", "- command: `python bench/regressions.py`", "",
             "Each row plants one bug in a copy of `cvlib/` and runs `python -m pytest NOTEBOOK -n0` "
             "(nbval, stored outputs checked under `cvcourse.numerics.CHECK`).", "",
             table(["regression", "what changed", "re-checked", "result", "cells that failed"], rows), ""]
    b = result["baseline"]
    if b is not None:
        lines += [f"Baseline, the same notebooks without a change: exit {b['returncode']} (`{b['summary']}`).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BY_NAME), help=f"comma-separated, of {','.join(BY_NAME)}")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unchanged run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BY_NAME))
    if unknown:
        parser.error(f"unknown regression(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    from bench.run import cpu_model

    result = run(names, baseline=not args.no_baseline)
    result["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu-regressions.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "cpu-regressions.md").write_text(markdown(result, cpu_model()))
    print(f"wrote {args.out / 'cpu-regressions.md'}")
    missed = [n for n, r in result["regressions"].items() if not r["caught"]]
    dirty = result["baseline"] is not None and result["baseline"]["returncode"] != 0
    return 1 if missed or dirty else 0


if __name__ == "__main__":
    sys.exit(main())
