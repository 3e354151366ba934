"""Hidden tests in two halves: the student's kernel computes, the grading process judges.

A graded cell of ``solutions/`` keeps nbgrader's form (visible tests, then a
``### BEGIN HIDDEN TESTS`` region). The region defines three functions and hands them to
:func:`run`::

    ### BEGIN HIDDEN TESTS
    from cvcourse import hidden
    from torchmetrics.functional.classification import multiclass_accuracy   # the twin: grader only

    def _inputs():                 # grading process: the hidden inputs, as data
        gen = torch.Generator().manual_seed(0)
        return {"logits": torch.randn(64, 10, generator=gen), "target": torch.randint(0, 10, (64,), generator=gen)}

    def _run(inputs, record):      # the student's kernel: call their code, record what comes back
        record("top-3", topk_error, inputs["logits"], inputs["target"], 3)

    def _check(inputs, results):   # grading process: the reference and the comparison
        expected = 1 - multiclass_accuracy(inputs["logits"], inputs["target"], num_classes=10, top_k=3).item()
        assert abs(float(results["top-3"].value) - expected) < 1e-6, "top-3 error is wrong"

    hidden.run(_inputs, _run, _check)
    ### END HIDDEN TESTS

Where each half runs:

* **Grading** (:func:`prepare`, in ``cvcourse grade``'s main process, which runs no student code):
  the release's locked setup cells and each region are executed with :func:`run` collecting
  instead of running; ``_inputs()`` is called once and encoded. The kernel receives, in place of
  the region, only the source of ``_run``, the encoded inputs and :data:`KERNEL_SOURCE` (the
  encoder and the recorder). What it sends back is one ``display_data`` message of type
  :data:`MIME`: JSON of plain values, decoded here with limits (:func:`decode`), never unpickled.
  ``_check`` then runs in the grading worker on that data. The expected values, the twin and the
  comparison never enter the student's process; what that process prints, displays or replies
  decides nothing beyond the data it reports (and an error in the visible tests, which can only
  cost points).
* **A plain run of the solution notebook** (nbval, an instructor trying the tests): :func:`run`
  does the same three steps in the notebook's own kernel, through the same encoding, and raises
  ``AssertionError`` when a check fails.

Data that travels (both ways): ``None``, ``bool``, ``int``, ``float`` (also inf and nan), ``str``,
``list``, ``tuple``, ``dict``, and ``torch.Tensor`` / ``numpy.ndarray`` of a plain dtype (bool,
(u)int8, int16/32/64, float16/bfloat16/32/64), ``torch.dtype``, ``torch.Size`` (as a tuple).
Subclasses of these (``OrderedDict``, a named tuple, ``np.float64``) arrive as the base type, read
through the base type's own methods. Anything else arrives as :class:`Unencodable` carrying its
type name. An exception raised by a
recorded call arrives as :class:`Raised` (type name, builtin base classes, message).
"""

from __future__ import annotations

import ast
import json
import re
import symtable
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KERNEL_SOURCE", "MIME", "AuthoringError", "Failure", "Plan", "Raised", "Unencodable", "decode", "gpu",
           "prepare", "run", "split"]

MIME = "application/vnd.cvcourse.results+json"
MAX_RESULTS_BYTES = 16 << 20  # one cell's reported data, as JSON
MAX_DEPTH = 32  # nesting of the reported values
MAX_TEXT = 2000  # characters kept of an exception's message, a type name, a string value
REGION = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[ \t]*\n(.*?)^[ \t]*### END HIDDEN TESTS[ \t]*\n?", re.S | re.M)

# The encoder, the decoder and the recorder: plain Python executed in the student's kernel (as
# source, so the sandbox needs neither cvcourse nor cvlib) and here (so both sides agree).
KERNEL_SOURCE = r'''
import base64 as _b64, json as _json, math as _math, sys as _sys

MIME = "application/vnd.cvcourse.results+json"
DTYPES = {"bool": 1, "uint8": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8,
          "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
MAX_DEPTH, MAX_TEXT, MAX_NDIM = 32, 2000, 8
MAX_BYTES = 12 << 20  # what one cell may report; the grader refuses more than 16 MiB


def _text(value):
    try:
        text = str(value)
    except Exception:
        return "<unprintable>"
    return text if type(text) is str and len(text) <= MAX_TEXT else str.__str__(text)[:MAX_TEXT] + "..."


def _type_name(obj):
    return _text(type.__dict__["__name__"].__get__(type(obj)))[:100]


def _tensor(x, torch):
    t = x.detach()
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype not in DTYPES:
        return {"$object": "Tensor of dtype " + dtype}
    if t.numel() * DTYPES[dtype] // 3 * 4 > MAX_BYTES:  # refused before it is copied and encoded
        raise ValueError(f"the results would exceed {MAX_BYTES >> 20} MiB (a tensor of {t.numel()} values)")
    flat = t.to("cpu").contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    return {"$tensor": {"dtype": dtype, "shape": [int(n) for n in t.shape], "data": _b64.b64encode(raw).decode()}}


def encode(x, depth=0):
    """x as JSON-ready plain data (see cvcourse.hidden)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    kind = type(x)
    if x is None or kind is bool or kind is str:
        return x
    if kind is int:
        return x if -(1 << 63) <= x < (1 << 63) else {"$int": str(x)}
    if kind is float:
        return x if _math.isfinite(x) else {"$float": repr(x)}
    if kind is list:
        return [encode(v, depth + 1) for v in x]
    if kind is tuple:
        return {"$tuple": [encode(v, depth + 1) for v in x]}
    if kind is dict:
        return {"$dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]}
    torch, np = _sys.modules.get("torch"), _sys.modules.get("numpy")
    if torch is not None:
        if isinstance(x, torch.Tensor):
            return _tensor(x, torch)
        if isinstance(x, torch.Size):
            return {"$tuple": [int(v) for v in x]}
        if isinstance(x, torch.dtype):
            return {"$dtype": str(x).removeprefix("torch.")}
    if np is not None and torch is not None and isinstance(x, np.ndarray) and x.dtype.kind in "biuf":
        return _tensor(torch.from_numpy(np.ascontiguousarray(x)), torch)
    if np is not None and isinstance(x, np.generic):
        return encode(x.item(), depth + 1)
    # subclasses (OrderedDict, namedtuple, IntEnum, np.float64) travel as their base type, read
    # through the base type's own methods, so that an override changes nothing
    if isinstance(x, int):
        return encode(int.__index__(x), depth + 1)
    if isinstance(x, float):
        return encode(float.__float__(x), depth + 1)
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, dict):
        return {"$dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(x)]}
    if isinstance(x, list):
        return [encode(v, depth + 1) for v in list.__iter__(x)]
    if isinstance(x, tuple):
        return {"$tuple": [encode(v, depth + 1) for v in tuple.__iter__(x)]}
    return {"$object": _type_name(x)}


def decode(obj, depth=0):
    """The inverse of encode for the kernel's inputs (the grading process decodes with limits)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    kind = type(obj)
    if obj is None or kind in (bool, int, float, str):
        return obj
    if kind is list:
        return [decode(v, depth + 1) for v in obj]
    if kind is not dict or len(obj) != 1:
        raise ValueError(f"not an encoded value: {_type_name(obj)}")
    (tag, body), = obj.items()
    if tag == "$int" and type(body) is str and len(body) <= 4000:
        return int(body)
    if tag == "$float" and body in ("inf", "-inf", "nan"):
        return float(body)
    if tag == "$tuple" and type(body) is list:
        return tuple(decode(v, depth + 1) for v in body)
    if tag == "$dict" and type(body) is list and all(type(p) is list and len(p) == 2 for p in body):
        out = {}
        for k, v in body:
            key = decode(k, depth + 1)
            if type(key) in (list, dict):
                raise ValueError("a dict key that is a list or a dict")
            out[key] = decode(v, depth + 1)
        return out
    if tag == "$dtype" and body in DTYPES:
        import torch
        return getattr(torch, body)
    if tag == "$object" and type(body) is str:
        return Unencodable(body[:100])
    if tag == "$tensor" and type(body) is dict and set(body) == {"dtype", "shape", "data"}:
        dtype, shape, data = body["dtype"], body["shape"], body["data"]
        if dtype not in DTYPES or type(shape) is not list or len(shape) > MAX_NDIM or type(data) is not str:
            raise ValueError("a tensor with a bad dtype, shape or data")
        if not all(type(n) is int and 0 <= n < (1 << 40) for n in shape):
            raise ValueError("a tensor with a bad shape")
        numel = 1
        for n in shape:
            numel *= n
        if len(data) % 4 or numel * DTYPES[dtype] != len(data) // 4 * 3 - data[-2:].count("="):
            raise ValueError(f"a tensor whose data does not hold {numel} {dtype} values")
        import torch
        raw = _b64.b64decode(data, validate=True)
        if not numel:
            return torch.empty(shape, dtype=getattr(torch, dtype))
        flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        if dtype == "bool":
            return (flat != 0).reshape(shape)  # any byte but 0 or 1 would be an invalid bool
        return flat.view(getattr(torch, dtype)).reshape(shape)
    raise ValueError(f"not an encoded value: tag {_text(tag)[:40]!r}")


class Unencodable:
    """A value of a type that does not travel (its type name only)."""

    def __init__(self, type_name):
        self.type_name = type_name

    def __repr__(self):
        return f"<a {self.type_name} object>"


def _key(key):
    if type(key) is not str or len(key) > 200:
        raise ValueError(f"a record key must be a str of at most 200 characters, got {_text(key)[:80]!r}")


class Recorder:
    """record(key, fn, *args, **kwargs) calls fn and keeps its value or exception, returning the
    value (None when it raised); record.value(key, value) keeps a value."""

    def __init__(self):
        self.entries, self.stopped, self.size = {}, None, 0

    def __call__(self, key, fn, *args, **kwargs):
        _key(key)
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:
            bases = [c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"][:20]
            self.entries[str(key)] = {"raised": {"type": _type_name(exc), "bases": bases, "message": _text(exc)}}
            return None
        self.value(key, value)
        return value

    def value(self, key, value):
        _key(key)
        try:
            entry = {"value": encode(value)}
            size = len(_json.dumps(entry, allow_nan=False))
            if self.size + size > MAX_BYTES:
                entry = {"unencodable": f"the results would exceed {MAX_BYTES >> 20} MiB"}
            else:
                self.size += size
        except Exception as exc:
            entry = {"unencodable": _type_name(exc) + ": " + _text(exc)[:300]}
        self.entries[str(key)] = entry

    def payload(self):
        return _json.dumps({"results": [[k, v] for k, v in self.entries.items()], "stopped": self.stopped},
                           allow_nan=False)


def main(run, blob, emit=None):
    """In the student's kernel: decode the inputs, run the kernel half, display the results
    (or hand them to ``emit``: a plain run of the solution notebook)."""
    record = Recorder()
    try:
        run(decode(_json.loads(blob)), record)
    except Exception as exc:
        record.stopped = _type_name(exc) + ": " + _text(exc)[:300]
    if emit is not None:
        return emit(record.payload())
    from IPython.display import display
    display({MIME: record.payload()}, raw=True)
'''

_kernel: dict = {}
exec(compile(KERNEL_SOURCE, "<cvcourse.hidden kernel side>", "exec"), _kernel)  # noqa: S102 - our own code
Unencodable = _kernel["Unencodable"]
_encode, _decode_value, _Recorder = _kernel["encode"], _kernel["decode"], _kernel["Recorder"]  # one implementation


class Failure(AssertionError):
    """A hidden check that failed, with the reason shown to the student."""


@dataclass(frozen=True)
class Raised:
    """What a recorded call raised: its type's name, the names of its builtin base classes, its message."""

    type: str
    bases: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


class Outcome:
    """One recorded entry: ``value`` (raises :class:`Failure` when the call raised), ``raised``."""

    def __init__(self, key: str, value=None, raised: Raised | None = None, unencodable: str | None = None):
        self.key, self._value, self.raised, self.unencodable = key, value, raised, unencodable

    @property
    def value(self):
        if self.raised is not None:
            raise Failure(f"{self.key}: raised {str(self.raised)[:300]}")
        if self.unencodable is not None:
            raise Failure(f"{self.key}: the value could not be reported ({self.unencodable})")
        return self._value

    def raises(self, error: type[BaseException], *words: str) -> None:
        """Fail unless the call raised ``error`` (or a subclass) with every word in its message."""
        if self.raised is None:
            raise Failure(f"{self.key}: expected {error.__name__}, nothing was raised")
        if error.__name__ not in self.raised.bases and self.raised.type != error.__name__:
            raise Failure(f"{self.key}: expected {error.__name__}, got {str(self.raised)[:300]}")
        for word in words:
            if word not in self.raised.message:
                raise Failure(f"{self.key}: the {error.__name__} message {self.raised.message[:200]!r} "
                              f"should mention {word!r}")


class Results:
    """The kernel's reported entries by key, as :class:`Outcome` objects; ``notes``: what the
    checks inside :meth:`not_counted` found."""

    def __init__(self, entries: dict[str, Outcome], stopped: str | None):
        self._entries, self.stopped, self.notes = entries, stopped, []

    @contextmanager
    def not_counted(self, what: str):
        """Checks that only some grading hosts run (the CUDA cases run only under ``cvcourse grade
        --gpu``): in this block a failing check becomes a note for the student and the instructor,
        never a lost point, so that one submission gets one score on every host. The block stops
        at the first failure::

            with results.not_counted("on CUDA"):
                assert float(results["case 0 cuda"].value) == expected, "..."
        """
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - a Failure, an AssertionError, a check failing on odd data
            text = str(exc).strip().splitlines()
            self.notes.append(f"{what} (not counted): {text[0][:280] if text else type(exc).__name__}")

    def __getitem__(self, key: str) -> Outcome:
        if key not in self._entries:
            why = f" (the hidden run stopped: {self.stopped})" if self.stopped else ""
            raise Failure(f"{key}: no result came back{why}")
        return self._entries[key]

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def keys(self):
        return self._entries.keys()


def decode(payload) -> Results:
    """Parse what the kernel reported for one cell, within limits; raise ``ValueError`` saying what
    was wrong with it."""
    if type(payload) is not str:
        raise ValueError("the results are not text")
    if len(payload) > MAX_RESULTS_BYTES:
        raise ValueError(f"the results are larger than {MAX_RESULTS_BYTES >> 20} MiB")
    try:
        top = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the results are not JSON ({type(exc).__name__})") from None
    if type(top) is not dict or set(top) != {"results", "stopped"} or type(top["results"]) is not list:
        raise ValueError("the results do not have the expected form")
    stopped = top["stopped"]
    if stopped is not None and type(stopped) is not str:
        raise ValueError("the results do not have the expected form")
    entries = {}
    for item in top["results"]:
        if type(item) is not list or len(item) != 2 or type(item[0]) is not str or type(item[1]) is not dict:
            raise ValueError("an entry of the results does not have the expected form")
        key, body = item[0], item[1]
        if len(key) > 200:
            raise ValueError("a key of the results is longer than 200 characters")
        if set(body) == {"value"}:
            try:
                entries[key] = Outcome(key, value=_decode_value(body["value"]))
            except RecursionError:
                raise ValueError(f"{key}: nested too deeply") from None
        elif set(body) == {"raised"} and type(body["raised"]) is dict:
            r = body["raised"]
            if not (type(r.get("type")) is str and type(r.get("message")) is str and type(r.get("bases")) is list
                    and all(type(b) is str for b in r["bases"])):
                raise ValueError(f"{key}: a reported exception does not have the expected form")
            entries[key] = Outcome(key, raised=Raised(r["type"][:100], tuple(b[:100] for b in r["bases"][:20]),
                                                      r["message"][:MAX_TEXT]))
        elif set(body) == {"unencodable"} and type(body["unencodable"]) is str:
            entries[key] = Outcome(key, unencodable=body["unencodable"][:300])
        else:
            raise ValueError(f"{key}: an entry of the results does not have the expected form")
    return Results(entries, stopped[:300] if stopped else None)


def _blob(value) -> str:
    return json.dumps(_encode(value), allow_nan=False)


def _unblob(blob: str):
    return _decode_value(json.loads(blob))


# -- authoring: hidden.run ----------------------------------------------------------------------------

_collecting: list | None = None
_gpu: bool | None = None  # set by prepare: whether the grading kernel has a GPU


def gpu() -> bool:
    """Whether the student's code runs with a GPU: when grading, what ``cvcourse grade --gpu``
    said; in a plain run, whether torch sees CUDA here."""
    if _gpu is not None:
        return _gpu
    import torch

    return torch.cuda.is_available()


def run(inputs, kernel_half, check) -> None:
    """Run one cell's hidden tests (see the module docstring). While :func:`prepare` collects,
    only note the three functions."""
    if _collecting is not None:
        _collecting.append((inputs, kernel_half, check))
        return
    blob = _blob(inputs())
    payloads = []
    _kernel["main"](kernel_half, blob, payloads.append)  # the kernel side's own code
    results = decode(payloads[0])
    check(_unblob(blob), results)  # raises as it would when grading, with its traceback
    for note in results.notes:
        print(note)


# -- grading: prepare, split -------------------------------------------------------------------------

def split(source: str) -> tuple[str, str | None]:
    """(the visible part of a test cell, its hidden region or None)."""
    match = REGION.search(source)
    if match is None:
        return source, None
    return source[:match.start()] + source[match.end():], match.group(1)


@dataclass
class Plan:
    """One graded cell's hidden tests, ready to grade: the code the kernel runs in place of the
    region, and the check that judges what it reports."""

    grade_id: str
    kernel_code: str
    inputs_blob: str
    check: object

    def verdict(self, payloads: list) -> tuple[str | None, list[str]]:
        """(None when the cell's hidden tests pass on the reported data, otherwise the reason;
        the notes of its :meth:`Results.not_counted` checks, which never change the points)."""
        if not payloads:
            return "the hidden tests' results did not come back (the cell stopped before them)", []
        if len(payloads) > 1:
            return "the cell reported results more than once", []
        try:
            results = decode(payloads[0])
        except ValueError as exc:
            return f"the reported results were malformed: {exc}", []
        try:
            self.check(_unblob(self.inputs_blob), results)
        except AssertionError as exc:  # a Failure of results[...] too: the message is the reason shown
            text = str(exc).strip().splitlines()
            return (f"AssertionError: {text[0][:280]}" if text else "AssertionError"), results.notes
        except Exception as exc:  # noqa: BLE001 - a check failing on odd data is a failed test
            return f"{type(exc).__name__}: {str(exc)[:280]}", results.notes
        return None, results.notes


class AuthoringError(ValueError):
    """A hidden-test region that does not follow the two-halves form."""


def _function_source(region: str, fn, grade_id: str) -> str:
    code = getattr(fn, "__code__", None)
    if code is None or code.co_filename != f"<hidden tests of {grade_id}>":
        raise AuthoringError(f"{grade_id}: the kernel half must be a function defined in the region")
    tree = ast.parse(region)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.lineno <= code.co_firstlineno <= node.end_lineno:
            if node.decorator_list:
                raise AuthoringError(f"{grade_id}: the kernel half {node.name} must not be decorated")
            top = symtable.symtable(region, "<region>", "exec")
            defined = {sym.get_name() for sym in top.get_symbols()
                       if sym.is_assigned() or sym.is_imported() or sym.is_namespace()} - {node.name}
            table = next(t for t in top.get_children() if t.get_name() == node.name and t.get_lineno() == node.lineno)
            used, stack = set(), [table]
            while stack:  # the global names _run and the functions nested in it read
                scope = stack.pop()
                used.update(sym.get_name() for sym in scope.get_symbols() if sym.is_global() and sym.is_referenced())
                stack += scope.get_children()
            if used & defined:
                raise AuthoringError(f"{grade_id}: the kernel half {node.name} uses {sorted(used & defined)}, "
                                     "defined in the region, which does not travel to the kernel: define "
                                     "them inside the function")
            return ast.get_source_segment(region, node)
    raise AuthoringError(f"{grade_id}: the kernel half must be a top-level function of the region")


def kernel_code(run_source: str, run_name: str, inputs_blob: str) -> str:
    """What the kernel runs in place of a hidden region."""
    return (f"\n# -- added by the grader: the hidden tests' inputs go in, your results come out --\n"
            f"def _cvcourse_hidden():\n"
            f"    _harness = {{}}\n"
            f"    exec({KERNEL_SOURCE!r}, _harness)\n"
            f"{textwrap.indent(run_source, '    ')}\n"
            f"    _inputs = {inputs_blob!r}\n"
            f"    _harness['main']({run_name}, _inputs)\n"
            f"_cvcourse_hidden()\n"
            f"del _cvcourse_hidden\n")


def prepare(source_nb, gpu: bool = False) -> dict[str, Plan]:
    """The plans of one source notebook's graded cells, by grade id. Runs the notebook's locked
    setup cells and each hidden region here (instructor code only); raises :class:`AuthoringError`
    for a graded cell whose hidden tests do not follow the form."""
    global _collecting, _gpu
    import torch

    _gpu = gpu
    threads = torch.get_num_threads()  # a locked cell may set it (08 does): not for the grader
    context: dict = {"__name__": "__cvcourse_hidden__"}
    plans = {}
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code":
            continue
        if meta.get("locked") and not meta.get("solution") and not meta.get("grade"):
            exec(compile(cell.source, f"<locked cell {meta.get('grade_id')}>", "exec"), context)  # noqa: S102
            continue
        if not meta.get("grade"):
            continue
        gid = meta["grade_id"]
        _, region = split(cell.source)
        if region is None:
            raise AuthoringError(f"{gid}: a graded cell without hidden tests (every graded cell needs them)")
        namespace = dict(context)
        _collecting = []
        try:
            exec(compile(region, f"<hidden tests of {gid}>", "exec"), namespace)  # noqa: S102
            collected = _collecting
        finally:
            _collecting = None
        if len(collected) != 1:
            raise AuthoringError(f"{gid}: the hidden region must call hidden.run once, not {len(collected)} times")
        inputs_fn, kernel_half, check = collected[0]
        source = _function_source(region, kernel_half, gid)
        blob = _blob(inputs_fn())
        plans[gid] = Plan(gid, kernel_code(source, kernel_half.__name__, blob), blob, check)
    torch.set_num_threads(threads)
    return plans
