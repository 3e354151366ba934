"""Re-execute course notebooks in place and store their outputs, ready to commit.

    python scripts/execute_notebooks.py                  # every book/ and solutions/ notebook
    python scripts/execute_notebooks.py book/01_topk.ipynb

Runs each notebook top to bottom in a fresh kernel of this Python environment (the one the
tests use), then drops per-run metadata (execution timestamps) and merges split stream
chunks, so that a re-run that changes no output changes no byte. nbval (`pytest`) later
re-runs them and compares these outputs under a *different* CPU code path: the kernels here run
under ``cvcourse.numerics.STORE`` (the machine's own fastest code, CPU device and scale), nbval's
under ``cvcourse.numerics.CHECK`` (scalar ATen, MKL's compatible branch, oneDNN at SSE4.1).
The book's CPU-scale experiments compute in float64 (``cvlib.device.experiment_dtype``), so the
two agree in every printed digit; a cell whose output differs fails the tests.
After editing a solution notebook, regenerate the student release too:
`python -m cvcourse release NN_topic` (nbgrader's generate_assignment, in the course's layout).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from cvcourse import numerics

REPO = Path(__file__).resolve().parents[1]


def _coalesce_streams(outputs: list) -> list:
    """Merge consecutive stdout (or stderr) chunks: how a stream was split is timing, not output."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.output_type == "stream" and prev is not None and prev.output_type == "stream"
                and prev.name == out.name):
            prev.text += out.text
        else:
            merged.append(out)
    return merged


def course_notebooks() -> list[Path]:
    """Every notebook the tests re-run: the book's chapters and the assignments' sources."""
    return sorted([*REPO.glob("book/*.ipynb"), *REPO.glob("solutions/*/*.ipynb")])


def run(nb: nbformat.NotebookNode, folder: Path) -> None:
    """Execute ``nb`` top to bottom in a fresh kernel whose working directory is ``folder``."""
    from jupyter_client import KernelManager

    with tempfile.TemporaryDirectory(prefix="execute-notebooks-") as sockets:
        # kernel_name "python3" resolves to this interpreter (jupyter_client maps it to sys.executable);
        # Unix sockets, not TCP: nothing listens on the network, and ipykernel has no reason to warn
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        try:
            NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(folder)}}).execute()
        finally:  # a client given its manager leaves the kernel running
            if km.has_kernel:
                km.shutdown_kernel(now=True)


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    run(nb, path.parent)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = _coalesce_streams(cell.outputs)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to re-execute (default: every book/ and solutions/ notebook)")
    paths = [p.resolve() for p in parser.parse_args(args).notebooks] or course_notebooks()
    for path in paths:
        if not path.is_file() or path.suffix != ".ipynb":
            raise SystemExit(f"not a notebook: {path}")
    print(f"kernels: {numerics.describe(numerics.STORE)}", flush=True)
    with numerics.environment(numerics.STORE):  # the kernels started below inherit it
        for path in paths:
            print(f"{execute(path):6.1f} s  {path.relative_to(REPO)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
