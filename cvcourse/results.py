"""What ``cvcourse grade`` writes: the gradebook, feedback, result files, grades.csv and the report.

Only the main process calls these, one student at a time: the gradebook is committed first,
the result file renamed into place last, so a crash in between is graded again on the next run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from . import feedback
from .integrity import EXCHANGE_FILES, small_file
from .record import NotebookScore, StudentResult

if TYPE_CHECKING:
    from .grade import Batch

__all__ = ["atomic_write", "finish", "max_scores", "record", "report"]


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def max_scores(template: Path, assignment: str) -> dict[str, dict[str, float]]:
    out = {}
    for path in sorted((template / "source" / assignment).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out[path.name] = {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
                          for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    return out


def finish(result: StudentResult, maxima: dict, killed: str | None) -> StudentResult:
    """Fill in a result: zeros where nothing was graded, a status, totals."""
    if killed:
        result.timeouts.append(killed)
    for name, cells in maxima.items():
        if name not in result.notebooks:
            result.notebooks[name] = NotebookScore({gid: (0.0, pts) for gid, pts in cells.items()},
                                                   {gid: "not graded" for gid in cells})
    result.score = sum(nb.points for nb in result.notebooks.values())
    result.max_score = sum(nb.maximum for nb in result.notebooks.values())
    graded_any = result.score > 0
    result.status = ("grader error" if result.grader_errors else
                     "timed out" if killed or (result.timeouts and not result.crashed) else
                     "crashed" if result.crashed else
                     "malformed" if result.malformed and not graded_any else
                     "missing" if any(n.startswith("missing notebook") for n in result.notes) and not graded_any
                     else "graded")
    # Flagged: the tests' points are kept as the automatic score, but the grade is 0 until reviewed.
    result.review = bool(result.flags)
    result.auto_score = result.score
    if result.review:
        result.score = 0.0
    return result


def gradebook_state(gb, assignment: str, student: str) -> tuple[dict[str, dict[str, float]], str]:
    """A student's grade as the gradebook holds it (the source of truth: formgrader and
    ``cvcourse review`` write there): ``{notebook file: {grade_id: points}}`` and the review state,
    ``""`` (nothing to review), ``"pending"`` (some cell still needs a manual grade) or
    ``"reviewed"`` (every cell graded, some by hand)."""
    from nbgrader.api import MissingEntry

    try:
        submission = gb.find_submission(assignment, student)
    except MissingEntry:
        return {}, ""
    scores, pending, manual = {}, False, False
    for nb in submission.notebooks:
        for grade in nb.grades:
            scores.setdefault(f"{nb.name}.ipynb", {})[grade.name] = float(grade.score)
            pending |= bool(grade.needs_manual_grade)
            manual |= grade.manual_score is not None
    return scores, "pending" if pending else "reviewed" if manual else ""


def assign_late_penalty(gb, assignment: str, student: str, plugin) -> tuple[float, float]:
    """Seconds late and the penalty, per notebook through nbgrader's late-submission ``plugin``
    and clamped to the notebook's score as nbgrader's ``AssignLatePenalties`` does; stored in the
    gradebook (``late_submission_penalty``) and returned summed."""
    submission = gb.find_submission(assignment, student)
    seconds, total = float(submission.total_seconds_late or 0.0), 0.0
    for nb in submission.notebooks:
        penalty = plugin.late_submission_penalty(student, nb.score, seconds) if seconds > 0 else None
        penalty = None if penalty is None else min(max(float(penalty), 0.0), float(nb.score))
        nb.late_submission_penalty = penalty
        total += penalty or 0.0
    gb.db.commit()
    return seconds, total


def _gradebook(out: Path, course_id: str):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{out / 'gradebook.db'}", course_id)


def apply_gradebook(result: StudentResult, scores: dict, state: str) -> None:
    """Take the grade from the gradebook: ``score`` and, per cell, the points; ``review`` while
    pending; ``reviewed`` once reviewed."""
    if scores:
        result.score = max(0.0, sum(sum(cells.values()) for cells in scores.values()) - result.late_penalty)
    result.review, result.reviewed = state == "pending", state == "reviewed"


def record(batch: Batch, result: StudentResult, work: Path, folder: Path) -> None:
    """Write one finished student (submitted in ``folder``): gradebook first, then the executed
    notebooks and feedback, then the result file. A grade reviewed by hand (formgrader or
    ``cvcourse review``) is kept: only the automatic scores are updated, and the result says so."""
    student = result.student
    if result.status == "grader error":  # no grade, no feedback: the next run grades it again
        atomic_write(batch.out / "results" / f"{student}.json", result.to_json())
        shutil.rmtree(work, ignore_errors=True)
        return
    with warnings.catch_warnings(), _gradebook(batch.out, result.course_id) as gb:
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy autoflush warnings
        from nbgrader.utils import parse_utc

        from .grade import late_plugin

        gb.update_or_create_student(student)
        gb.update_or_create_submission(batch.assignment, student,
                                       timestamp=parse_utc(result.submitted) if result.submitted else None)
        kept = gradebook_state(gb, batch.assignment, student)[1] == "reviewed"
        for name, nb in result.notebooks.items():
            for gid, (points, _) in nb.scores.items():
                grade = gb.find_grade(gid, name.removesuffix(".ipynb"), batch.assignment, student)
                grade.auto_score = points
                if not kept:
                    grade.manual_score = 0.0 if result.review else None  # pending review: no marks yet
                    grade.needs_manual_grade = result.review
        gb.db.commit()
        scores, state = gradebook_state(gb, batch.assignment, student)
        result.seconds_late, result.late_penalty = assign_late_penalty(gb, batch.assignment, student,
                                                                       late_plugin(batch.course))
    apply_gradebook(result, scores, state)
    if kept:
        result.notes.append(f"kept the reviewed grade, {result.score:g}/{result.max_score:g}, from the gradebook "
                            f"(automatic: {result.auto_score:g}); a re-run never overwrites a review")
    _keep_autograded(work / "autograded" / student / batch.assignment,
                     batch.out / "autograded" / student / batch.assignment, folder)
    write_feedback(batch.out, batch.assignment, result, scores, state)
    atomic_write(batch.out / "results" / f"{student}.json", result.to_json())
    shutil.rmtree(work, ignore_errors=True)


def write_feedback(out: Path, assignment: str, result: StudentResult, scores: dict, state: str) -> None:
    """``feedback/STUDENT/ASSIGNMENT/NOTEBOOK.html`` (nbgrader's layout, so ``nbgrader
    release_feedback`` delivers it), rendered from the kept executed notebook: the tests' result
    per cell, and the grade the gradebook holds ("pending review" while flagged)."""
    target = out / "feedback" / result.student / assignment
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in EXCHANGE_FILES:  # what release_feedback needs (nbgrader's generate_feedback copies them too)
        if (out / "autograded" / result.student / assignment / name).is_file():
            shutil.copy(out / "autograded" / result.student / assignment / name, target / name)
    grade = feedback.PENDING if state == "pending" else None
    for name, outcome in sorted(result.notebooks.items()):
        executed = out / "autograded" / result.student / assignment / name
        if not executed.is_file():
            continue
        nb = nbformat.read(executed, as_version=4)
        shown = scores.get(name) if state == "reviewed" else grade
        note = (f"Submitted {result.seconds_late / 3600:.1f} h after the due date: the late-submission penalty "
                f"takes {result.late_penalty:g} points; your grade is {result.score:g} / {result.max_score:g}."
                if result.late_penalty > 0 and state != "pending" else "")
        (target / name.replace(".ipynb", ".html")).write_text(
            feedback.render(nb, outcome, title=f"{assignment} / {name} / {result.student}", grade=shown, note=note))
    if not any(target.iterdir()):
        (target / "feedback.html").write_text(feedback.summary_page(result, assignment))


def _keep_autograded(source: Path, target: Path, submitted: Path) -> None:
    """Keep the executed notebooks in nbgrader's layout (``autograded/STUDENT/ASSIGNMENT/``), for
    review. The source of each cell is the rebuilt submission's, hidden tests included (the
    kernel halves were swapped back after each cell ran); the results the kernel reported are
    dropped (they were judged already and may be large), each cell's reply status is kept.
    Beside them, as nbgrader's autograde does, the submission's ``timestamp.txt`` and
    ``submission_secret.txt`` (regular files of at most 1 KiB; the secret names the student's
    feedback in the exchange, where ``nbgrader release_feedback`` puts it)."""
    shutil.rmtree(target, ignore_errors=True)
    kept = {name: small_file(submitted / name) for name in EXCHANGE_FILES}
    if source.is_dir() or any(kept.values()):
        target.mkdir(parents=True)
    for name, data in kept.items():
        if data is not None:
            (target / name).write_bytes(data)
    if not source.is_dir():
        return
    for path in sorted(source.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            cell.metadata.get("cvcourse", {}).pop("results", None)
        nbformat.write(nb, target / path.name)


_MARKDOWN = str.maketrans({c: f"\\{c}" for c in "\\`*_[]()#<>!|{}"} | {"\n": " ", "\r": " "})


def md(text: str, limit: int = 300) -> str:
    """Student-controlled text (file and folder names, notes quoting them) made inert for
    report.md: markdown and HTML characters escaped, one line, at most ``limit`` characters."""
    text = str(text)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.translate(_MARKDOWN)


def report(batch: Batch, students: dict, skipped: list, resumed: list, limits: str = "") -> dict:
    """grades.csv, report.json and report.md, every grade taken from the gradebook."""
    results = [StudentResult.from_json((batch.out / "results" / f"{s}.json").read_text()) for s in students]
    cells = [(name, gid) for r in results[:1] for name, nb in sorted(r.notebooks.items()) for gid in nb.scores]
    graded: dict[str, dict] = {}
    if results:
        with warnings.catch_warnings(), _gradebook(batch.out, results[0].course_id) as gb:
            warnings.simplefilter("ignore")
            for r in results:
                if r.status != "grader error":
                    graded[r.student], state = gradebook_state(gb, batch.assignment, r.student)
                    apply_gradebook(r, graded[r.student], state)

    def points(r, name, gid):
        return graded.get(r.student, {}).get(name, {}).get(gid, 0.0)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "status", "score", "max_score", "auto_score", *[gid for _, gid in cells], "review",
                     "submitted", "seconds_late", "late_penalty"])
    for r in results:
        review = "pending: " + "; ".join(r.flags) if r.review else "reviewed" if r.reviewed else ""
        writer.writerow([r.student, r.status, f"{r.score:g}", f"{r.max_score:g}", f"{r.auto_score:g}",
                         *[f"{points(r, n, g):g}" for n, g in cells], review,
                         r.submitted, f"{r.seconds_late:g}", f"{r.late_penalty:g}"])
    atomic_write(batch.out / "grades.csv", buffer.getvalue())
    report = {"assignment": batch.assignment, "sandbox": not batch.unsafe, "limits": limits, "resumed": resumed,
              "students": {r.student: {k: getattr(r, k) for k in ("status", "score", "max_score", "auto_score", "review",
                                                                 "reviewed", "submitted", "seconds_late",
                                                                 "late_penalty",
                                                                 "flags", "notes", "timeouts", "crashed", "malformed",
                                                                 "grader_errors", "seconds")}
                           | {"cells": {g: points(r, n, g) for n, g in cells}}
                           for r in results},
              "skipped": skipped}
    atomic_write(batch.out / "report.json", json.dumps(report, indent=1, sort_keys=True))
    lines = [f"# Grading report: {batch.assignment}", "",
             "Sandbox: " + ("bubblewrap" if not batch.unsafe else "**NONE (--unsafe-no-sandbox)**"), "",
             f"Limits: {md(limits, 400)}", ""]
    for title, test in (("Grader errors (not the students' fault: no grade recorded, graded again on the next run)",
                         lambda r: r.status == "grader error"),
                        ("Timed out", lambda r: r.status == "timed out"),
                        ("Crashed", lambda r: r.status == "crashed"),
                        ("Missing notebook", lambda r: r.status == "missing"),
                        ("Malformed (a notebook could not be read)", lambda r: r.malformed),
                        ("Flagged for review (graded 0 until reviewed; the tests gave the automatic score; "
                         "`cvcourse review` or formgrader)", lambda r: r.review),
                        ("Reviewed (the grade an instructor gave, kept by every re-run)", lambda r: r.reviewed),
                        ("Late (nbgrader's late-submission plugin; the score is after the penalty)",
                         lambda r: r.seconds_late > 0),
                        ("Repaired (cells restored, files renamed or ignored)", lambda r: r.notes)):
        hits = [r for r in results if test(r)]
        lines += [f"## {title}: {len(hits)}", ""]
        for r in hits:
            late = [f"submitted {r.submitted}, {r.seconds_late / 3600:.1f} h late, penalty {r.late_penalty:g}"]
            details = (r.grader_errors + r.timeouts + r.crashed + r.malformed + r.flags
                       + (late if r.seconds_late > 0 else []) + r.notes)
            lines.append(f"* {md(r.student)} ({r.score:g}/{r.max_score:g}, automatic {r.auto_score:g}): "
                         + "; ".join(md(d) for d in details))
        lines.append("")
    lost = [(r, f"{name}: {gid}", why) for r in results for name, nb in sorted(r.notebooks.items())
            for gid, why in sorted(nb.failed.items())]
    lines += [f"## Tests that gave no points: {len(lost)}", ""]
    lines += [f"* {md(r.student)} {md(where)}: {md(why)}" for r, where, why in lost] + [""]
    if skipped:
        lines += [f"## Skipped: {len(skipped)}", ""] + [f"* {md(s['student'])}: {md(s['notes'][0])}" for s in skipped] + [""]
    atomic_write(batch.out / "report.md", "\n".join(lines))
    return report
