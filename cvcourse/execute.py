"""Running a rebuilt submission under nbgrader, and scoring what came back.

* :class:`SandboxedExecute` is nbgrader's ``Execute`` preprocessor with these changes: in each
  graded cell it runs, in place of the hidden region, the kernel half that
  :func:`cvcourse.hidden.prepare` built (inputs in, the student's results out); it keeps each
  cell's ``execute_reply`` status and the results the cell reported (a ``display_data`` of type
  :data:`cvcourse.hidden.MIME`, kept aside, never shown); it caps the output a notebook may
  produce (every output message counts, errors included); and it drops display updates and
  widget messages.
* :func:`score` turns the executed notebook into points: a graded cell earns its points when its
  visible tests ran without an error and its hidden checks, run here on the reported data, pass.
  The kernel's own reply can only cost points. Output on stderr (warnings) does not cost points,
  unlike stock nbgrader.
"""

from __future__ import annotations

import json

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute
from traitlets import Dict, Integer

from . import hidden
from .record import NotebookScore

__all__ = ["SandboxedExecute", "score"]


def score(nb: nbformat.NotebookNode, plans: dict[str, hidden.Plan], deleted: list[str]) -> NotebookScore:
    """Points per graded cell of an executed notebook, with the reasons a cell got none."""
    scores, failed, notes = {}, {}, {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade"):
            continue
        gid, points = meta["grade_id"], float(meta.get("points", 0))
        mine = cell.metadata.get("cvcourse", {})
        status = mine.get("status")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if gid in deleted:
            reason = "the cell was deleted from the submission"
        elif status is None:
            reason = "the cell did not run"
        elif status != "ok" or errors:
            name = str(errors[0].get("ename", "error"))[:100] if errors else ""
            value = str(errors[0].get("evalue", "")).strip().splitlines() if errors else []
            detail = f": {value[0][:160]}" if value else ""
            reason = f"{name}{detail}" if errors else "the cell did not finish (it was interrupted or aborted)"
        elif gid not in plans:
            reason = "the grader has no hidden tests for this cell"
        else:
            reason, said = plans[gid].verdict(mine.get("results", []))
            if said:
                notes[gid] = said
        scores[gid] = (0.0 if reason else points, points)
        if reason:
            failed[gid] = reason
    return NotebookScore(scores, failed, notes)


MAX_MESSAGE_BYTES = hidden.MAX_RESULTS_BYTES + (1 << 20)


def _bounded_manager():
    """An async kernel manager whose sockets refuse any message over MAX_MESSAGE_BYTES: ZeroMQ
    drops it (and the connection, which reconnects) before it is parsed, so no single message of
    the student's (a 30 MB display update, a huge result) costs the grader more than that."""
    import zmq
    import zmq.asyncio
    from jupyter_client import AsyncKernelManager

    from traitlets import default

    class BoundedKernelManager(AsyncKernelManager):
        @default("context")
        def _bounded_context(self):
            self._created_context = True
            context = zmq.asyncio.Context()
            context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            return context

    return BoundedKernelManager


class SandboxedExecute(Execute):
    """nbgrader's Execute, running the kernel halves of the hidden tests, recording each cell's
    reply status and reported results, and capping the notebook's output.

    A cell past the timeout is interrupted (nbgrader's behaviour) and fails; when the next cell
    times out as well, the kernel ignored the interrupt and the notebook is stopped. A stopped
    notebook (that, or a dead kernel) is still returned, marked ``metadata.cvcourse.stopped``
    (``"timeout"`` or ``"kernel died"``), so the worker learns why from the notebook itself.
    """

    max_output_bytes = Integer(1 << 20, help="Output kept per notebook; beyond it outputs are dropped.").tag(config=True)
    kernel_halves = Dict(help="{notebook name: {grade id: code run in place of the hidden region}}").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", _bounded_manager())
        super().__init__(*args, **kwargs)

    def preprocess_cell(self, cell, resources, index):
        cell.metadata["cvcourse"] = {"results": []}  # whatever the submission stored there is dropped
        meta = cell.metadata.get("nbgrader", {})
        code = self.kernel_halves.get(resources.get("unique_key", "") + ".ipynb", {}).get(meta.get("grade_id"))
        if cell.cell_type != "code" or not meta.get("grade") or code is None:
            return super().preprocess_cell(cell, resources, index)
        original = cell.source
        visible, _ = hidden.split(original)
        cell.source = visible.rstrip("\n") + "\n" + code
        try:
            return super().preprocess_cell(cell, resources, index)
        finally:
            cell.source = original

    def preprocess(self, nb, resources=None, km=None):
        self._output_bytes, self.truncated, self._timed_out = 0, False, False
        try:
            return super().preprocess(nb, resources, km=km)
        except CellTimeoutError:
            nb.metadata.setdefault("cvcourse", {})["stopped"] = "timeout"
        except DeadKernelError:
            nb.metadata.setdefault("cvcourse", {})["stopped"] = "kernel died"
        return nb, resources if resources is not None else {}

    async def _async_handle_timeout(self, timeout, cell=None):
        if self._timed_out:
            raise CellTimeoutError.error_from_timeout_and_cell("the kernel ignored an interrupt", timeout, None)
        return await super()._async_handle_timeout(timeout, cell)

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        content = kwargs["execute_reply"]["content"]
        self._timed_out = content.get("ename") == "CellTimeoutError"
        kwargs["cell"].metadata.setdefault("cvcourse", {})["status"] = content["status"]

    def _update_display_id(self, display_id, msg):
        """Display updates are dropped: one could rewrite an earlier, shown output with what a later
        cell saw (the grader needs none of them)."""

    def handle_comm_msg(self, outs, msg, cell_index):
        """Widget messages are dropped: their state would be stored in the notebook, unbounded."""

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        data = content.get("data") if isinstance(content, dict) else None
        if isinstance(data, dict) and hidden.MIME in data:  # reported results: kept aside, never shown
            cell = self.nb.cells[cell_index]
            kept = cell.metadata.setdefault("cvcourse", {}).setdefault("results", [])
            payload = data[hidden.MIME]
            if msg.get("msg_type") == "display_data" and len(kept) < 2:
                too_big = not isinstance(payload, str) or len(payload) > hidden.MAX_RESULTS_BYTES
                kept.append(None if too_big else payload)
            return None
        size = len(json.dumps(content))
        self._output_bytes += size
        if self._output_bytes > self.max_output_bytes:
            if not self.truncated:
                self.truncated = True
                self.nb.metadata.setdefault("cvcourse", {})["output_truncated"] = True
                outs.append(nbformat.v4.new_output("stream", name="stderr",
                                                   text=f"[grader: output beyond {self.max_output_bytes} bytes dropped]\n"))
                self.log.warning("output limit reached in cell %s", cell_index)
            return None
        return super().output(outs, msg, display_id, cell_index)
