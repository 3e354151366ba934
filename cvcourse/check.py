"""``cvcourse check NOTEBOOK``: a student runs their notebook and sees which visible tests pass.

The notebook runs top to bottom in a fresh kernel of this Python (errors do not stop it; a cell
past the time limit is interrupted and the run goes on), a line per cell on stderr shows the
progress, and each graded test cell is reported: passed, or failed with the line that failed
and its message. Nothing is written to the notebook file.
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["CheckError", "Outcome", "check", "read_notebook"]

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CELL_LINE = re.compile(r"Cell In\[(\d+)\], line (\d+)")


class CheckError(Exception):
    """Input ``cvcourse check`` cannot run: one line saying what is wrong."""


@dataclass
class Outcome:
    """What one run found: a line per graded test cell, and how many failed."""

    lines: list[str] = field(default_factory=list)
    failed: int = 0
    timed_out: list[int] = field(default_factory=list)  # indices of cells interrupted at the limit


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path``; :class:`CheckError` naming the problem for anything else."""
    if not path.exists():
        raise CheckError(f"{path} does not exist")
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.ipynb"))
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise CheckError(f"{path} is a folder: give the notebook file inside it{hint}")
    if path.suffix.lower() != ".ipynb":
        raise CheckError(f"{path} is not a notebook: cvcourse check runs .ipynb files")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - JSON, encoding and schema errors alike: one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckError(f"cannot read {path} as a notebook: {reason[:200]}") from None
    return nb


def _label(cell, index: int) -> str:
    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
    if gid:
        return gid
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    return f"cell {index + 1} ({first[:40]})" if first else f"cell {index + 1}"


def _failure(cell, error) -> str:
    """``line N: <code>: Name: message`` for an error output of ``cell``."""
    text = ANSI.sub("", "\n".join(error.get("traceback", [])))
    where = ""
    match = CELL_LINE.search(text)  # the first frame is the cell that ran
    if match:
        number = int(match.group(2))
        lines = cell.source.splitlines()
        code = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        where = f"line {number}: {code[:120]}: " if code else f"line {number}: "
    message = str(error.get("evalue", "")).strip()
    return f"{where}{error.get('ename', 'Error')}" + (f": {message[:300]}" if message else "")


def _client_class():
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError

    class Client(NotebookClient):
        """Interrupts a cell at the limit and goes on; stops if the kernel ignores the interrupt."""

        async def _async_handle_timeout(self, timeout, cell=None):
            index = self.nb.cells.index(cell) if cell is not None and cell in self.nb.cells else None
            if index in self.timed_out:
                raise CellTimeoutError.error_from_timeout_and_cell("the kernel ignored an interrupt", timeout, cell)
            self.timed_out.append(index)
            return await super()._async_handle_timeout(timeout, cell)

    return Client


def check(nb: nbformat.NotebookNode, folder: Path, timeout: int, progress=None) -> Outcome:
    """Run ``nb`` (working directory ``folder``), ``timeout`` seconds per cell; report its tests."""
    from jupyter_client import AsyncKernelManager
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    progress = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    outcome = Outcome()
    stopped = None
    with tempfile.TemporaryDirectory(prefix="cvcourse-check-") as sockets:
        # Unix sockets, not TCP: nothing listens on the network, and ipykernel has no reason to warn.
        km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        client = _client_class()(nb, km=km, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                                 resources={"metadata": {"path": str(folder)}})
        client.timed_out = []

        def started(cell, cell_index, **_):
            if cell_index in code_cells:  # nbclient announces markdown cells too
                progress(f"[{code_cells.index(cell_index) + 1}/{len(code_cells)}] {_label(cell, cell_index)}")

        client.on_cell_start = started
        try:
            client.execute()
        except CellTimeoutError:
            stopped = f"a cell ran past {timeout} s and the kernel ignored the interrupt: the run was stopped"
        except DeadKernelError:
            stopped = "the kernel died (the notebook's code crashed it, or it ran out of memory)"
        outcome.timed_out = [i for i in client.timed_out if i is not None]
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        ran = cell.get("execution_count") is not None or errors or cell.get("outputs")
        if index in outcome.timed_out:
            verdict = f"FAILED: ran past {timeout} s and was interrupted"
        elif errors:
            verdict = f"FAILED: {_failure(cell, errors[0])}"
        elif meta.get("grade") and not ran:
            verdict = "not run"
        else:
            verdict = "passed"
        if meta.get("grade"):
            outcome.lines.append(f"{meta['grade_id']:>24} ({meta.get('points', 0):g} points): {verdict}")
            outcome.failed += verdict != "passed"
        elif verdict != "passed":
            outcome.lines.append(f"{_label(cell, index):>24}: {verdict}")
    if stopped:
        outcome.lines.append(stopped)
        outcome.failed = max(outcome.failed, 1)
    return outcome
