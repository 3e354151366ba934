"""Running a rebuilt submission under nbgrader, and scoring what came back.

* :class:`SandboxedExecute` is nbgrader's ``Execute`` preprocessor with two additions: it keeps
  each cell's ``execute_reply`` status (an error counts even when the student silenced its
  traceback), and it caps the output a notebook may produce.
* :func:`add_probes` puts a probe cell before every graded cell and one at the end. A probe checks,
  without trusting any state the student could have changed, that builtins, the comparison helpers
  of torch/numpy/math and the kernel's execution and error-reporting machinery are the originals,
  and prints a per-run random token. A test counts only when the probes on both sides of it print
  the token with "ok".
* :func:`score` turns the executed notebook into points: a graded cell earns its points when it
  ran, its reply was ``ok``, it shows no error, and the probes around it are clean. Output on
  stderr (warnings) does not cost points, unlike stock nbgrader.
"""

from __future__ import annotations

import json
import re

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute
from traitlets import Integer

__all__ = ["FAILURES", "PROBE_MARK", "SandboxedExecute", "add_probes", "score"]

PROBE_MARK = "# cvcourse grading probe"

_PROBE = PROBE_MARK + r''' (added by the grader; not part of the submission)
def _cvcourse_probe():
    import builtins, sys, types
    bad = []
    def defined_in(obj, roots):
        module = getattr(obj, "__globals__", {}).get("__name__") if hasattr(obj, "__globals__") else None
        return module is None or module.split(".")[0] in roots
    def genuine(obj, name, roots):
        if obj is None:
            return False
        if type(obj).__name__ in ("builtin_function_or_method", "method_descriptor", "wrapper_descriptor",
                                  "method-wrapper", "getset_descriptor", "classmethod_descriptor"):
            return getattr(obj, "__name__", None) == name
        return getattr(obj, "__name__", None) == name and defined_in(obj, roots)
    real = {"float": type(0.0), "int": type(0), "bool": type(True), "str": type(""), "list": type([]),
            "tuple": type(()), "dict": type({}), "set": type(set()), "type": type(type), "range": type(range(0)),
            "zip": type(zip()), "map": type(map(len, ())), "enumerate": type(enumerate(()))}
    for name, cls in real.items():
        if vars(builtins).get(name) is not cls:
            bad.append("builtins." + name)
    try:
        assert False
    except BaseException as exc:
        if vars(builtins).get("AssertionError") is not type(exc):
            bad.append("builtins.AssertionError")
    for name in ("abs", "len", "isinstance", "issubclass", "print", "round", "min", "max", "sum", "all", "any",
                 "repr", "getattr", "hasattr", "callable", "sorted", "iter", "next", "id", "hash", "pow"):
        obj = vars(builtins).get(name)
        if type(obj) is not types.BuiltinFunctionType or obj.__name__ != name or obj.__self__ is not builtins:
            bad.append("builtins." + name)
    if sys.gettrace() is not None or sys.getprofile() is not None:
        bad.append("sys.settrace/setprofile")
    if not genuine(sys.excepthook, getattr(sys.excepthook, "__name__", ""), ("IPython", "ipykernel", "sys")):
        bad.append("sys.excepthook")
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    if type(shell).__module__ != "ipykernel.zmqshell" or shell.custom_exceptions != ():
        bad.append("IPython shell or its custom exception handler")
    else:
        kernel, session = shell.kernel, shell.kernel.session
        for obj, names in ((shell, ("run_cell", "run_cell_async", "run_code", "run_ast_nodes", "showtraceback",
                                    "_showtraceback", "showsyntaxerror", "transform_cell", "should_run_async")),
                           (kernel, ("do_execute", "execute_request", "send_response", "finish_metadata")),
                           (session, ("send", "serialize", "sign")),
                           (shell.displayhook, ("__call__", "write_output_prompt")),
                           (shell.display_pub, ("publish",))):
            for name in names:
                method = getattr(obj, name, None)
                if not genuine(getattr(method, "__func__", method), name,
                               ("IPython", "ipykernel", "jupyter_client", "traitlets")):
                    bad.append(f"{type(obj).__name__}.{name}")
        transformers = [*shell.input_transformers_cleanup, *shell.input_transformers_post, *shell.ast_transformers,
                        *shell.input_transformer_manager.cleanup_transforms,
                        *shell.input_transformer_manager.line_transforms,
                        *shell.input_transformer_manager.token_transformers]
        for item in transformers:
            origin = item if isinstance(item, type) else getattr(item, "__func__", item)
            module = getattr(origin, "__module__", None) or type(origin).__module__
            if not str(module).startswith(("IPython.", "ipykernel.")) or not defined_in(origin, ("IPython", "ipykernel")):
                bad.append("IPython input/AST transformers")
    checks = {"torch": ("allclose", "equal", "isclose", "eq", "all", "any", "abs", "isfinite"),
              "torch.testing": ("assert_close",),
              "numpy": ("allclose", "isclose", "array_equal", "all"),
              "numpy.testing": ("assert_allclose", "assert_array_equal", "assert_equal"),
              "math": ("isclose", "isfinite", "fabs")}
    for module_name, names in checks.items():
        module = sys.modules.get(module_name)
        for name in names if module is not None else ():
            if not genuine(getattr(module, name, None), name, (module_name.split(".")[0],)):
                bad.append(f"{module_name}.{name}")
    tensor = getattr(sys.modules.get("torch"), "Tensor", None)
    methods = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__float__", "__bool__",
               "__sub__", "item", "tolist", "allclose", "equal", "float", "double", "abs", "all", "any")
    for name in methods if tensor is not None else ():
        if not genuine(getattr(tensor, name, None), name, ("torch",)):
            bad.append("torch.Tensor." + name)
    line = "cvcourse-probe {nonce} {index} " + ("ok" if not bad else "tampered: " + ", ".join(sorted(set(bad))))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
_cvcourse_probe()
del _cvcourse_probe
'''


def add_probes(nb: nbformat.NotebookNode, nonce: str) -> list[int]:
    """Insert a probe before every graded cell and one at the end; return the probes' indices."""
    cells, probes = [], []
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            probes.append(len(cells))
            cells.append(nbformat.v4.new_code_cell(_PROBE.replace("{nonce}", nonce).replace("{index}", str(len(probes)))))
        cells.append(cell)
    probes.append(len(cells))
    cells.append(nbformat.v4.new_code_cell(_PROBE.replace("{nonce}", nonce).replace("{index}", str(len(probes)))))
    nb.cells = cells
    return probes


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return output.get("data", {}).get("text/plain", "") if "data" in output else ""


def _probe_verdict(cell, nonce: str) -> str:
    """'ok', or why the probe is not clean. The probe's line is found anywhere in the cell's
    output, so that a student's background thread printing at the same time does not hide it."""
    text = "".join(_text(out) for out in cell.get("outputs", []))  # a stream may arrive in pieces
    found = re.findall(rf"cvcourse-probe {re.escape(nonce)} \d+ (ok|tampered: [^\n]*)", text)
    if cell.get("metadata", {}).get("cvcourse", {}).get("status") != "ok" or len(found) != 1:
        return "the probe did not report (its output or execution was interfered with)"
    return found[0]


def score(nb: nbformat.NotebookNode, probes: list[int], nonce: str, deleted: list[str]) -> dict:
    """Points per graded cell of an executed notebook, with the reasons a cell got none.

    Returns ``{"scores": {grade_id: (points, max)}, "failed": {grade_id: reason},
    "tampering": [reasons]}``.
    """
    verdicts = {i: _probe_verdict(nb.cells[i], nonce) for i in probes}
    scores, failed, tampering = {}, {}, []
    for k, i in enumerate(probes[:-1]):
        cell = nb.cells[i + 1]
        meta = cell.metadata["nbgrader"]
        gid, points = meta["grade_id"], float(meta.get("points", 0))
        before, after = verdicts[i], verdicts[probes[k + 1]]
        status = cell.metadata.get("cvcourse", {}).get("status")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if gid in deleted:
            reason = "the cell was deleted from the submission"
        elif status is None:
            reason = "the cell did not run"
        elif status != "ok" or errors:
            name = errors[0].get("ename", "error") if errors else "error"
            value = str(errors[0].get("evalue", "")).strip().splitlines() if errors else []
            detail = f": {value[0][:160]}" if value else ""
            reason = f"{name}{detail} (reply status {status})"
        elif before != "ok" or after != "ok":
            reason = "interpreter tampering detected: " + (before if before != "ok" else after)
            tampering.append(f"{gid}: {before if before != 'ok' else after}")
        else:
            reason = None
        scores[gid] = (0.0 if reason else points, points)
        if reason:
            failed[gid] = reason
    return {"scores": scores, "failed": failed, "tampering": tampering}


# Why the last notebook run in this process stopped early ("timeout" or "kernel died"); read by the
# grading worker, which runs one submission per process.
FAILURES: list[str] = []


class SandboxedExecute(Execute):
    """nbgrader's Execute, recording each cell's reply status and capping the notebook's output.

    A cell past the timeout is interrupted (nbgrader's behaviour) and fails; when the next cell
    times out as well, the kernel ignored the interrupt and the notebook is stopped.
    """

    max_output_bytes = Integer(1 << 20, help="Output kept per notebook; beyond it outputs are dropped.").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._output_bytes, self.truncated, self._timed_out = 0, False, False
        try:
            return super().preprocess(nb, resources, km=km)
        except CellTimeoutError:
            FAILURES.append("timeout")
            raise
        except DeadKernelError:
            FAILURES.append("kernel died")
            raise

    async def _async_handle_timeout(self, timeout, cell=None):
        if self._timed_out:
            raise CellTimeoutError.error_from_timeout_and_cell("the kernel ignored an interrupt", timeout, None)
        return await super()._async_handle_timeout(timeout, cell)

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        content = kwargs["execute_reply"]["content"]
        self._timed_out = content.get("ename") == "CellTimeoutError"
        kwargs["cell"].metadata["cvcourse"] = {"status": content["status"]}

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {})))
        if self.nb.cells[cell_index].source.startswith(PROBE_MARK):  # probes keep their few bytes
            kept = sum(len(json.dumps(o)) for o in outs)
            return super().output(outs, msg, display_id, cell_index) if kept + size <= 4096 else None
        self._output_bytes += size
        if self._output_bytes > self.max_output_bytes:
            if not self.truncated:
                self.truncated = True
                self.nb.metadata["cvcourse"] = {"output_truncated": True}
                outs.append(nbformat.v4.new_output("stream", name="stderr",
                                                   text=f"[grader: output beyond {self.max_output_bytes} bytes dropped]\n"))
                self.log.warning("output limit reached in cell %s", cell_index)
            return None
        return super().output(outs, msg, display_id, cell_index)
