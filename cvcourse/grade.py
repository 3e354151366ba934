"""``cvcourse grade``: autograde a folder of untrusted submissions, each in its own sandbox.

Layout of ``SUBMISSIONS_DIR``: one folder per student, holding the notebook(s) directly or in a
sub-folder named after the assignment (nbgrader's ``submitted/STUDENT/ASSIGNMENT``).

What is written to ``OUT`` (default ``graded/ASSIGNMENT``)::

    gradebook.db            nbgrader gradebook (assignment, students, every graded cell's score)
    grades.csv              one row per student: status, total, every graded cell, review reasons
    report.md, report.json  every submission that timed out, crashed, was malformed or was flagged
    feedback/STUDENT/ASSIGNMENT/*.html
                            feedback to hand back (nbgrader's layout; sanitized; no hidden test,
                            no student HTML/JS; "pending review" while flagged)
    autograded/STUDENT/ASSIGNMENT/*.ipynb
                            the executed notebooks (nbgrader's layout), for review
    results/STUDENT.json    the finished result of each student; a re-run resumes from these

The main process prepares the hidden tests once (:mod:`cvcourse.hidden`: their inputs, their
kernel halves, their checks). Each student is then graded in a forked worker: the submission is
rebuilt from the release (:mod:`cvcourse.integrity`) and nbgrader's ``Autograde`` runs it in a
private course directory whose kernel is started in the sandbox (:mod:`cvcourse.sandbox`); in each
graded cell the kernel runs the visible tests and the kernel half of the hidden tests, and the
worker judges the data it reports (:mod:`cvcourse.execute`). The main process alone writes
``OUT``; it records a student only after the gradebook commit, so a crash loses at most the
submissions in flight.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat
from traitlets.config import Config

from . import cgroups, feedback, gradebook, hidden, integrity
from .execute import SandboxedExecute, score
from .record import StudentResult
from .results import _gradebook, atomic_write, finish, max_scores, record, report
from .sandbox import Limits, kernel_argv

__all__ = ["Batch", "BatchError", "grade"]

KERNEL = "cvcourse-sandbox"
VERSION = "2"  # bump when grading rules change: finished results are then graded again


class BatchError(ValueError):
    """A batch that cannot be graded as given (one line naming what is wrong); nothing is written."""


@dataclass
class Batch:
    """One grading run: ``assignment`` of the course at ``course``, submissions, output folder."""

    course: Path
    assignment: str
    submissions: Path
    out: Path
    limits: Limits = field(default_factory=Limits)
    jobs: int = 1
    gpu: bool = False
    unsafe: bool = False
    force: bool = False
    due: "datetime | None" = None  # the due date (UTC); None: the course gradebook's, if it has one


@dataclass
class Prepared:
    """What the main process prepares once per batch from the source (trusted), inherited by each
    forked worker: the hidden tests' plans and the forbidden-use rules, by notebook name."""

    plans: dict[str, dict[str, hidden.Plan]]
    rules: dict[str, integrity.Forbidden]
    host: cgroups.Support  # the cgroups (and socket-folder mount) this host offers
    prefix: str  # of this batch's cgroup names
    optimizers: bool = False  # whether the source's code names torch optimizers (see _warm_judges)

    @classmethod
    def of(cls, source: Path, batch: "Batch") -> "Prepared":
        notebooks = {p.name: nbformat.read(p, as_version=4) for p in sorted(source.glob("*.ipynb"))}
        return cls({name: hidden.prepare(nb, batch.gpu) for name, nb in notebooks.items()},
                   {name: integrity.Forbidden.of(nb) for name, nb in notebooks.items()},
                   cgroups.detect(), "cvcourse-" + hashlib.sha256(str(batch.out).encode()).hexdigest()[:8] + "-",
                   any("optim" in c.source for nb in notebooks.values() for c in nb.cells if c.cell_type == "code"))

    def group(self, student: str) -> str:
        """The cgroup name of one student's sandbox."""
        return self.prefix + hashlib.sha256(student.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def late_plugin(course: Path):
    """nbgrader's late-submission plugin as the course configures it (``AssignLatePenalties.plugin_class``,
    default ``LateSubmissionPlugin`` with its ``penalty_method``: ``"none"`` or ``"zero"``); read once
    per course and process."""
    from nbgrader.preprocessors import AssignLatePenalties

    assigner = AssignLatePenalties(config=_course_config(course))
    assigner.init_plugin()
    return assigner.plugin_inst


def _course_config(course: Path) -> Config:
    from traitlets.config.loader import PyFileConfigLoader

    if not (course / "nbgrader_config.py").is_file():
        return Config()
    return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()


def _nbgrader_config(root: Path, course_id: str, **sections) -> Config:
    cfg = Config()
    cfg.CourseDirectory.root = str(root)
    cfg.CourseDirectory.course_id = course_id
    cfg.CourseDirectory.source_directory = "source"
    cfg.CourseDirectory.release_directory = "release"
    cfg.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    cfg.ClearOutput.enabled = True
    for section, values in sections.items():
        for key, value in values.items():
            setattr(cfg[section], key, value)
    return cfg


def _log_to(app, stream) -> None:
    """Send an nbgrader app's log to ``stream`` instead of the terminal."""
    app.log.handlers[:] = []
    app.log.addHandler(logging.StreamHandler(stream))


def _template(batch: Batch, course_id: str, due: datetime | None = None) -> tuple[Path, str]:
    """Generate the release and a student-free gradebook from solutions/; return (dir, hash)."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    source = batch.course / "solutions" / batch.assignment
    if not source.is_dir():
        raise FileNotFoundError(f"assignment {batch.assignment!r}: no folder {source}")
    template = batch.out / ".template"
    shutil.rmtree(template, ignore_errors=True)
    shutil.copytree(source, template / "source" / batch.assignment)
    cfg = _nbgrader_config(template, course_id)
    gradebook.stamp(template / "gradebook.db")
    coursedir = CourseDirectory(config=cfg)
    coursedir.assignment_id = batch.assignment
    app = GenerateAssignment(coursedir=coursedir, config=cfg)
    _log_to(app, io.StringIO())
    app.force = True
    app.start()
    digest = hashlib.sha256(VERSION.encode())
    for path in sorted(source.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes())
    digest.update(json.dumps(asdict(batch.limits), sort_keys=True).encode() + bytes([batch.gpu, batch.unsafe]))
    digest.update(str(due).encode())  # a new due date: every student's lateness is worked out again
    return template, digest.hexdigest()


def _submission_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# -- one student, in a forked worker ---------------------------------------------------------------

def _die_with_parent() -> None:
    os.setsid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _rebuild(batch: Batch, releases: dict, prepared: Prepared, result: StudentResult, folder: Path,
             work: Path) -> dict[str, list[str]]:
    """Stage 1: find, read and rebuild each notebook, scan it, write it to work/submitted; return
    {notebook name: grade ids of deleted test cells} for the notebooks to run."""
    found, notes, flags = integrity.find_notebooks(folder, releases)
    result.notes += notes
    result.flags += flags
    runs = {}
    for name, release in releases.items():
        if name not in found:
            continue
        try:
            cells = integrity.read_cells(found[name])
        except integrity.Malformed as exc:
            result.malformed.append(str(exc))
            continue
        rebuilt = integrity.rebuild(release, cells)
        result.notes += [f"{name}: {note}" for note in rebuilt.notes]
        modules, names = integrity.protected_names(release)
        rules = prepared.rules.get(name, integrity.Forbidden())
        for cell in rebuilt.notebook.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and (meta.get("solution") or not meta):
                result.flags += [f"{name}: {reason}" for reason in integrity.scan(cell.source, modules, names)]
            if cell.cell_type == "code" and meta.get("solution"):
                result.flags += [f"{name}: {reason}" for reason in integrity.forbidden_uses(cell.source, rules)]
        submitted = work / "submitted" / result.student / batch.assignment / name
        submitted.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(rebuilt.notebook, submitted)
        runs[name] = rebuilt.deleted_tests
    return runs


def _execute(batch: Batch, template: Path, prepared: Prepared, course_id: str, student: str, work: Path) -> str:
    """Stage 2: nbgrader's Autograde over work/submitted, the kernel in the sandbox; the executed
    notebooks land in work/autograded. Returns nbgrader's error lines (for a notebook it could
    not write)."""
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory

    shutil.copy(template / "gradebook.db", work / "gradebook.db")
    # The kernel's Unix sockets live in work/ipc, named by a path relative to the working
    # directory (a socket's absolute path may not exceed 107 bytes, and work can be deep): this
    # worker runs in work, the sandboxed kernel in /tmp/work with work/ipc bound at ipc. Nothing
    # is left outside OUT, even when the batch is killed (the next run removes OUT/.work).
    sockets = work / "ipc"
    sockets.mkdir()
    if prepared.host.mount:
        cgroups.mount_socket_dir(sockets)  # unmounted by the main process, before it removes work
    os.chdir(work)
    spec = work / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": kernel_argv(sockets, batch.limits, gpu=batch.gpu, unsafe=batch.unsafe,
                            hide=tuple(m for r in prepared.rules.values() for m in r.sandbox_hidden()),
                            cgroup=prepared.host.group_args(prepared.group(student), batch.limits.memory_mb << 20,
                                                            batch.limits.processes)),
        "display_name": "cvcourse sandbox", "language": "python", "interrupt_mode": "message"}))
    os.environ.update(JUPYTER_PATH=str(work / "jupyter"), JUPYTER_RUNTIME_DIR=str(sockets))
    cfg = _nbgrader_config(
        work, course_id,
        Autograde={"autograde_preprocessors": [SandboxedExecute] + _after_execute()},
        SandboxedExecute={"kernel_name": KERNEL, "timeout": batch.limits.cell_timeout,
                          "kernel_halves": {n: {g: p.kernel_code for g, p in cells.items()}
                                            for n, cells in prepared.plans.items()},
                          "max_output_bytes": batch.limits.output_kb * 1024, "startup_timeout": 120},
        KernelManager={"transport": "ipc", "ip": "ipc/kernel", "connection_file": str(sockets / "kernel.json")})
    coursedir = CourseDirectory(config=cfg)
    coursedir.assignment_id, coursedir.student_id = batch.assignment, student
    app = Autograde(coursedir=coursedir, config=cfg)
    log = io.StringIO()
    _log_to(app, log)
    app.force, app.create_student = True, True
    try:
        app.start()
    except Exception:  # noqa: BLE001 - nbgrader reports per-notebook failures in its log
        pass
    return "\n".join(line for line in log.getvalue().splitlines() if "Error" in line or "died" in line)


def _judge(batch: Batch, prepared: Prepared, result: StudentResult, runs: dict, failure: str, work: Path) -> None:
    """Stage 3: score each executed notebook from what it reported."""
    limits = batch.limits
    for name, deleted in runs.items():
        graded = work / "autograded" / result.student / batch.assignment / name
        if not graded.is_file():  # the kernel never ran the notebook: it did not start, or nbgrader failed
            result.grader_errors.append(f"{name}: the grader could not run the notebook ({failure[-300:] or 'no log'})")
            continue
        nb = nbformat.read(graded, as_version=4)
        mine = nb.metadata.get("cvcourse", {})
        if mine.get("stopped") == "timeout":
            result.timeouts.append(f"{name}: a cell ran past {limits.cell_timeout} s and ignored the interrupt: stopped")
            continue
        if mine.get("stopped") == "kernel died":
            result.crashed.append(f"{name}: the kernel died ({failure[-300:] or 'no log'})")
            continue
        outcome = score(nb, prepared.plans.get(name, {}), deleted)
        if mine.get("output_truncated"):
            result.notes.append(f"{name}: output beyond {limits.output_kb} KiB was dropped")
        result.timeouts += [f"{name}: a cell ran past {limits.cell_timeout} s and was interrupted"
                            for c in nb.cells if any(o.get("ename") == "CellTimeoutError" for o in c.get("outputs", []))]
        result.notes += [f"{name}: {gid}: {note}" for gid, said in outcome.notes.items() for note in said]
        result.notebooks[name] = outcome  # the main process writes the feedback, with the gradebook's grade


def _grade_one(batch: Batch, template: Path, prepared: Prepared, course_id: str, student: str, folder: Path,
               work: Path) -> StudentResult:
    """One student, in the forked worker: rebuild, execute in the sandbox, judge."""
    release_dir = template / "release" / batch.assignment
    releases = {p.name: nbformat.read(p, as_version=4) for p in sorted(release_dir.glob("*.ipynb"))}
    result = StudentResult(student)
    runs = _rebuild(batch, releases, prepared, result, folder, work)
    if runs:
        failure = _execute(batch, template, prepared, course_id, student, work)
        _judge(batch, prepared, result, runs, failure, work)
    return result


def _after_execute() -> list:
    from nbgrader.preprocessors import CheckCellMetadata, IgnorePattern, LimitOutput

    return [IgnorePattern, LimitOutput, CheckCellMetadata]


def _worker(batch, template, prepared, course_id, student, folder, work) -> None:
    """Forked child: grade one student, write work/result.json, exit."""
    _die_with_parent()
    import torch

    torch.set_num_threads(1)  # the main process may have started OpenMP's pool, which a fork breaks
    code = 0
    try:
        log = os.open(work / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1), os.dup2(log, 2)
        result = _grade_one(batch, template, prepared, course_id, student, folder, work)
        atomic_write(work / "result.json", result.to_json())
    except BaseException:  # noqa: BLE001 - the parent reports a worker without a result as crashed
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(code)


# -- the batch, in the main process ------------------------------------------------------------------

def _students(batch: Batch) -> tuple[dict[str, Path], list[dict]]:
    if not batch.submissions.exists():
        raise BatchError(f"submissions folder {batch.submissions} does not exist")
    if not batch.submissions.is_dir():
        raise BatchError(f"{batch.submissions} is a file, not a folder of submissions (one sub-folder per student)")
    students, skipped = {}, []
    for entry in sorted(batch.submissions.iterdir()):
        if entry.name.startswith("."):
            continue
        student, why = integrity.student_id(entry.name)
        if entry.is_symlink() or not entry.is_dir():
            why = "not a student folder (a symbolic link or a file)"
        elif student in students:
            why = f"the same student id as another folder ({student!r} once Unicode-normalized)"
        if why:
            skipped.append({"student": entry.name, "status": "skipped", "notes": [why]})
            continue
        inner = entry / batch.assignment
        students[student] = inner if inner.is_dir() and not inner.is_symlink() else entry
    if not students and not skipped:
        raise BatchError(f"no student folders in {batch.submissions} (expected one sub-folder per student, "
                         f"holding the notebooks, e.g. {batch.submissions / 'STUDENT' / (batch.assignment + '.ipynb')})")
    return students, skipped


def _check_assignment(batch: Batch, source: Path, students: dict[str, Path]) -> None:
    """Refuse a folder in which no student holds any of the assignment's notebooks but some hold
    other notebooks: the submissions of another assignment, most likely."""
    wanted = {integrity._key(p) for p in source.glob("*.ipynb")}
    found: dict[str, int] = {}
    for folder in students.values():
        keys = {integrity._key(path) for path, problem in integrity._walk(folder)
                if problem is None and path.name.lower().endswith(".ipynb")}
        if keys & wanted:
            return
        for key in keys:
            found[key] = found.get(key, 0) + 1
    if found:
        held = ", ".join(f"{k}.ipynb ({n})" for k, n in sorted(found.items(), key=lambda kv: -kv[1])[:3])
        raise BatchError(f"none of the {len(students)} submissions in {batch.submissions} holds "
                         f"{' or '.join(sorted(k + '.ipynb' for k in wanted))}; they hold {held}. "
                         f"Are these the submissions of {batch.assignment}?")


def timestamp(folder: Path) -> tuple[datetime | None, str | None]:
    """The submission time nbgrader's ``submit``/``collect`` wrote to ``timestamp.txt`` (UTC), and
    a note when the file is there but unreadable."""
    from nbgrader.utils import parse_utc

    path = folder / "timestamp.txt"
    if not os.path.lexists(path):
        return None, None
    data = integrity.small_file(path, limit=200)  # bounded, no link, no pipe
    if data is None:
        return None, "timestamp.txt is not a regular file of at most 200 bytes; graded as on time"
    text = data.decode("utf-8", "replace").strip()
    try:
        return parse_utc(text), None
    except (ValueError, OverflowError, TypeError) as exc:
        return None, f"timestamp.txt is not a time ({exc}); graded as on time"


def due_date(batch: Batch) -> datetime | None:
    """``--due``, or the due date the course's own gradebook holds for the assignment
    (``nbgrader db assignment add NAME --duedate=...``)."""
    if batch.due is not None:
        return batch.due
    from nbgrader.api import Gradebook, MissingEntry

    db = batch.course / "gradebook.db"
    if not db.is_file():
        return None
    course_id = _course_config(batch.course).get("CourseDirectory", {}).get("course_id", "default_course")
    with Gradebook(f"sqlite:///{db}", course_id) as gb:  # the course's own id: nothing is added to its gradebook
        try:
            return gb.find_assignment(batch.assignment).duedate
        except MissingEntry:
            return None


def _check_gpu() -> str:
    """``--gpu``: the NVIDIA devices the sandbox passes in, and CUDA working here; else BatchError."""
    devices = sorted(Path("/dev").glob("nvidia[0-9]*"))
    if not devices:
        raise BatchError("--gpu was given, but this host has no NVIDIA GPU (no /dev/nvidia0): grade without --gpu")
    import torch

    if not torch.cuda.is_available():
        raise BatchError(f"--gpu was given, but CUDA does not work here ({len(devices)} /dev/nvidia* "
                         "devices, torch.cuda.is_available() is False): check the driver")
    return f"{torch.cuda.device_count()} CUDA device(s), {torch.cuda.get_device_name(0)}"


def _warm_judges(prepared: Prepared) -> None:
    """Import, once and before the workers fork, what torch otherwise imports on first use inside
    each worker's judge; each forked worker inherits it:

    * what ``torch.testing.assert_close``, the hidden checks' comparison, imports on its first call
      (``torch.distributed.tensor``, about 1 s in every worker otherwise);
    * ``torch._dynamo``, which building the first torch optimizer imports (about 1 s; the references
      of 05 and 08 build optimizers), only where the source's code names an optimizer: elsewhere
      no judge needs it, and importing it would cost every batch that second.

    A speed choice only: a judge that needs something not warmed here imports it itself. (Torch is
    already imported: :func:`cvcourse.hidden.prepare` imports it.)"""
    import torch

    torch.testing.assert_close(torch.zeros(1), torch.zeros(1))
    if prepared.optimizers:
        import torch._dynamo  # noqa: F401


def grade(batch: Batch, progress=print) -> dict:
    """Grade every submission; return the report (also written to ``batch.out``)."""
    import multiprocessing

    source = batch.course / "solutions" / batch.assignment
    if not source.is_dir():
        raise BatchError(f"assignment {batch.assignment!r}: no folder {source}")
    students, skipped = _students(batch)  # bad input is refused before anything is written
    _check_assignment(batch, source, students)
    gpu = _check_gpu() if batch.gpu else None
    batch.out.mkdir(parents=True, exist_ok=True)
    course_id = _course_config(batch.course).get("CourseDirectory", {}).get("course_id", "default_course")
    due = due_date(batch)
    template, source_hash = _template(batch, course_id, due)
    prepared = Prepared.of(template / "source" / batch.assignment, batch)
    _warm_judges(prepared)
    feedback.hide_paths(batch.course, batch.out, batch.submissions)
    cgroups.unmount_below(batch.out / ".work")  # what a killed batch left: socket mounts, groups
    cgroups.sweep(prepared.host, prepared.prefix)
    maxima = max_scores(template, batch.assignment)
    if not (batch.out / "gradebook.db").exists():
        shutil.copy(template / "gradebook.db", batch.out / "gradebook.db")
    with _gradebook(batch.out, course_id) as gb:
        gb.update_or_create_assignment(batch.assignment, duedate=due)
    if due is not None:
        progress(f"due {due:%Y-%m-%d %H:%M:%S} UTC; late work: nbgrader's late-submission plugin "
                 "(LateSubmissionPlugin.penalty_method in nbgrader_config.py)")
    pending, resumed = [], []
    for student, folder in students.items():
        previous = batch.out / "results" / f"{student}.json"
        digest = _submission_hash(folder)
        if previous.is_file() and not batch.force:
            old = json.loads(previous.read_text())
            if (old.get("submission_hash") == digest and old.get("source_hash") == source_hash
                    and old.get("status") != "grader error"):
                resumed.append(student)
                continue
        pending.append((student, folder, digest))
    progress(f"{batch.assignment}: {len(pending)} to grade, {len(resumed)} already graded, {batch.jobs} at a time"
             + (" -- UNSAFE: no sandbox" if batch.unsafe else ""))
    progress(f"limits: {prepared.host.describe()}")
    if gpu:
        progress(f"GPU: {gpu}, passed into each sandbox")
    ctx = multiprocessing.get_context("fork")
    running: dict = {}
    timings = {}
    while pending or running:
        while pending and len(running) < batch.jobs:
            student, folder, digest = pending.pop(0)
            work = batch.out / ".work" / student
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            proc = ctx.Process(target=_worker, args=(batch, template, prepared, course_id, student, folder, work))
            proc.start()
            running[student] = (proc, work, digest, time.monotonic(), folder)
        time.sleep(0.05)
        for student, (proc, work, digest, start, folder) in list(running.items()):
            killed = None
            if proc.is_alive():
                if time.monotonic() - start < batch.limits.wall:
                    continue
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                killed = f"killed after the wall-clock limit of {batch.limits.wall} s"
            proc.join()
            del running[student]
            cgroups.kill_and_remove(prepared.host, prepared.group(student))
            cgroups.unmount_below(work)
            timings[student] = time.monotonic() - start
            path = work / "result.json"
            if path.is_file() and not killed:
                result = StudentResult.from_json(path.read_text())
            else:
                log = (work / "worker.log").read_text(errors="replace")[-500:] if (work / "worker.log").exists() else ""
                result = StudentResult(student, grader_errors=[] if killed else [f"the grading worker failed: {log}"])
            result.submission_hash, result.source_hash, result.course_id = digest, source_hash, course_id
            submitted, problem = timestamp(folder)
            result.submitted = submitted.isoformat() if submitted else ""
            result.notes += [problem] if problem else []
            result.seconds = round(timings[student], 1)
            result = finish(result, maxima, killed)
            record(batch, result, work, folder)
            progress(f"  {student}: {result.status}, {result.score:g}/{result.max_score:g}"
                     + (" (review)" if result.review else ""))
    shutil.rmtree(batch.out / ".work", ignore_errors=True)
    return report(batch, students, skipped, resumed, prepared.host.describe())
