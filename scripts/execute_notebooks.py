"""Re-execute course notebooks in place and store their outputs, ready to commit.

    python scripts/execute_notebooks.py                  # every book/ and solutions/ notebook
    python scripts/execute_notebooks.py book/01_topk.ipynb

Runs each notebook top to bottom in a fresh kernel of this Python environment (the one the
tests use), then drops per-run metadata (execution timestamps) and merges split stream
chunks, so that a re-run that changes no output changes no byte. nbval (`pytest`) later
re-runs them and compares these outputs. Both pin the CPU code paths of torch, MKL and oneDNN
(scripts/reference_numerics.py) so the outputs do not depend on the CPU.
After editing a solution notebook, regenerate the student release too:
`nbgrader generate_assignment NN_topic --force`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from reference_numerics import apply as apply_reference_numerics

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
    # kernel_name "python3" resolves to this interpreter (jupyter_client maps it to sys.executable)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()


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
    apply_reference_numerics()  # the kernels started below inherit it; see reference_numerics.py
    paths = [Path(a).resolve() for a in args] or course_notebooks()
    for path in paths:
        if not path.is_file() or path.suffix != ".ipynb":
            raise SystemExit(f"not a notebook: {path}")
        print(f"{execute(path):6.1f} s  {path.relative_to(REPO)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
