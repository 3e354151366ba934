"""Seconds to execute every book and solution notebook in a fresh kernel, and the test command.

Each notebook runs top to bottom with nbclient in a new kernel of this Python (as
``scripts/execute_notebooks.py`` does, from the notebook's folder, with the same pinned CPU
numerics on the CPU: ``cvcourse.numerics.STORE``, or ``CHECK`` as nbval runs them), and is
not written back. A one-cell notebook that only imports torch and
cvlib runs first, the same way: its time (kernel start + imports) is the reference each
notebook is compared with. ``--jobs N`` runs N notebooks at a time (each still timed alone;
they then compete for the cores). :func:`test_command` times ``python -m pytest`` from the
repository root as a subprocess (the suite's ``tests`` part).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path

from bench.common import table

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))
from execute_notebooks import course_notebooks, run  # noqa: E402  (the notebooks and the kernel the tests use)

from cvcourse import numerics  # noqa: E402

BASELINE = "(reference: kernel start + `import torch, cvlib`)"


@contextmanager
def kernel_env(device: str, path: str = "store"):
    """Environment the kernels inherit: on the CPU, the code path notebooks are stored
    (``"store"``, as ``scripts/execute_notebooks.py``) or checked (``"check"``, as nbval) under
    (see ``cvcourse.numerics``); ``CVLIB_DEVICE`` says what ``pick_device()`` then picks."""
    env = {**numerics.PATHS[path], "CVLIB_DEVICE": device}
    if device != "cpu":
        env = {"CVLIB_DEVICE": device}
    with numerics.environment(env):
        yield env


def execute(path: str) -> dict:
    """Run one notebook in a fresh kernel; seconds (kernel start included) and any error."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    error = None
    try:
        run(nb, Path(path).parent)
    except Exception as exc:  # CellExecutionError, DeadKernelError, timeouts: record, go on
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # tracebacks come with terminal colours
        lines = [line for line in text.strip().splitlines() if line.strip()]
        error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]
    return {"seconds": time.perf_counter() - start, "ok": error is None, "error": error}


def _baseline(folder: Path) -> str:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch, cvlib")])
    path = folder / "baseline.ipynb"
    nbformat.write(nb, path)
    return str(path)


def benchmark(device: str = "cpu", *, jobs: int = 1, paths: list[Path] | None = None, progress=print,
              numerics_path: str = "store") -> dict:
    paths = course_notebooks() if paths is None else paths
    names = [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in paths]
    results: dict[str, dict] = {}
    with kernel_env(device, numerics_path) as env, tempfile.TemporaryDirectory() as tmp:
        results[BASELINE] = execute(_baseline(Path(tmp)))
        progress(f"  {results[BASELINE]['seconds']:6.1f} s  {BASELINE}")
        wall = time.perf_counter()
        if jobs <= 1:
            for name, path in zip(names, paths):
                results[name] = execute(str(path))
                progress(f"  {results[name]['seconds']:6.1f} s  {name}{'' if results[name]['ok'] else '  FAILED'}")
        else:
            with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
                for name, result in zip(names, pool.map(execute, [str(p) for p in paths])):
                    results[name] = result
                    progress(f"  {result['seconds']:6.1f} s  {name}{'' if result['ok'] else '  FAILED'}")
        wall = time.perf_counter() - wall
        out = {"device": device, "jobs": jobs, "kernel_env": env, "notebooks": results, "wall_s": wall,
               "serial_total_s": sum(r["seconds"] for n, r in results.items() if n != BASELINE)}
    base = results[BASELINE]["seconds"]
    for r in results.values():
        r["ratio"] = r["seconds"] / base
    return out


def test_command() -> dict:
    """Seconds of the repository's whole test command (``python -m pytest``, its own settings:
    nbval over the notebooks, xdist with one worker per core), run from the repository root."""
    command = [sys.executable, "-m", "pytest"]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    tail = [line for line in proc.stdout.strip().splitlines() if line.strip()]
    return {"command": ["python", "-m", "pytest"], "seconds": seconds, "returncode": proc.returncode,
            "summary": tail[-1] if tail else proc.stderr.strip()[-300:]}


def markdown(r: dict) -> str:
    base = r["notebooks"][BASELINE]["seconds"]
    rows = []
    for name, n in r["notebooks"].items():
        status = "ok" if n["ok"] else f"**raised** {n['error']}"
        rows.append([name if name == BASELINE else f"`{name}`", f"{n['seconds']:.1f}", f"{n['ratio']:.1f}", status])
    rows.append(["**all notebooks, sum**", f"{r['serial_total_s']:.1f}", f"{r['serial_total_s'] / base:.1f}",
                 f"wall {r['wall_s']:.1f} s with {r['jobs']} job(s)"])
    env = numerics.describe(r["kernel_env"])
    return ("## Notebooks (seconds in a fresh kernel)\n\n"
            f"Each notebook executed top to bottom with nbclient, not written back; kernels run with {env}; "
            f"{r['jobs']} at a time. Seconds include the kernel's start and shutdown.\n\n"
            + table(["notebook", "seconds", "x reference", "result"], rows))
