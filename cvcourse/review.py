"""``cvcourse review``: the flagged submissions of a graded batch, and the grades an instructor
gives them.

The gradebook (``OUT/gradebook.db``, nbgrader's) holds every grade; nbgrader's formgrader edits
the same rows, and the executed notebooks it shows are kept in ``OUT/autograded/``. A review sets
each cell's manual score and clears its "needs manual grade" mark. ``grade`` never overwrites a
reviewed grade (it updates only the automatic scores, and says so), and ``grades.csv``, the
report and the feedback pages are rewritten from the gradebook after every review.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from .record import StudentResult
from .results import (_gradebook, apply_gradebook, assign_late_penalty, atomic_write, gradebook_state, report,
                      write_feedback)

__all__ = ["ReviewError", "Entry", "entries", "refresh", "set_grade"]


class ReviewError(ValueError):
    """A review that cannot be applied: one line naming what is wrong; nothing is changed."""


@dataclass
class Entry:
    """One graded student as the review sees them."""

    result: StudentResult
    state: str  # "" (not flagged), "pending", "reviewed"
    scores: dict  # {notebook file: {grade_id: points}}, as the gradebook holds them


def _results(out: Path) -> dict[str, StudentResult]:
    folder = out / "results"
    if not (out / "gradebook.db").is_file() or not folder.is_dir():
        raise ReviewError(f"{out} holds no graded batch (no gradebook.db and results/): run cvcourse grade first")
    return {p.stem: StudentResult.from_json(p.read_text()) for p in sorted(folder.glob("*.json"))}


def entries(out: Path, assignment: str, plugin=None) -> list[Entry]:
    """Every graded student, with the grade and review state the gradebook holds; with nbgrader's
    late-submission ``plugin``, each late penalty is worked out again from the current scores."""
    results = _results(out)
    found = []
    with warnings.catch_warnings(), _gradebook(out, next(iter(results.values())).course_id if results else "") as gb:
        warnings.simplefilter("ignore")
        for result in results.values():
            scores, state = gradebook_state(gb, assignment, result.student)
            if plugin is not None and scores:
                result.seconds_late, result.late_penalty = assign_late_penalty(gb, assignment, result.student, plugin)
            apply_gradebook(result, scores, state)
            found.append(Entry(result, state, scores))
    return found


def set_grade(out: Path, assignment: str, student: str, *, accept: bool = False, reject: bool = False,
              cells: dict[str, float] | None = None, course: Path = Path(".")) -> Entry:
    """Review ``student``: ``accept`` (the tests' points stand), ``reject`` (0 everywhere), or
    ``cells`` ({grade_id: points}; the cells not named keep their automatic points). Writes the
    gradebook (and the late penalty, through the late-submission plugin ``course`` configures),
    then rewrites the feedback and the report."""
    cells = dict(cells or {})
    if sum((accept, reject, bool(cells))) != 1:
        raise ReviewError("give exactly one of --accept, --reject or --cell GRADE_ID=POINTS")
    results = _results(out)
    if student not in results:
        raise ReviewError(f"no graded student {student!r} in {out} (graded: {', '.join(sorted(results)) or 'none'})")
    result = results[student]
    if result.status == "grader error":
        raise ReviewError(f"{student} could not be graded (a grader-side error): grade again before reviewing")
    maxima = {gid: most for nb in result.notebooks.values() for gid, (_, most) in nb.scores.items()}
    for gid, points in cells.items():
        if gid not in maxima:
            raise ReviewError(f"{student}: no graded cell {gid!r} (cells: {', '.join(sorted(maxima))})")
        if not 0 <= points <= maxima[gid]:
            raise ReviewError(f"{student}: {gid} takes 0 to {maxima[gid]:g} points, got {points:g}")
    with warnings.catch_warnings(), _gradebook(out, result.course_id) as gb:
        warnings.simplefilter("ignore")
        submission = gb.find_submission(assignment, student)
        for nb in submission.notebooks:
            for grade in nb.grades:
                automatic = float(grade.auto_score or 0.0)
                grade.manual_score = 0.0 if reject else cells.get(grade.name, automatic)
                grade.needs_manual_grade = False
        gb.db.commit()
    refresh(out, assignment, [student], course=course)
    return next(e for e in entries(out, assignment) if e.result.student == student)


def refresh(out: Path, assignment: str, students: list[str] | None = None, course: Path = Path(".")) -> None:
    """Rewrite the feedback of ``students`` (default: all), their late penalties, the results
    files, ``grades.csv`` and the report from the gradebook: after a review here, or grades
    entered in formgrader."""
    from .grade import Batch, late_plugin

    previous = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    if previous.get("assignment", assignment) != assignment:
        raise ReviewError(f"{out} holds the grades of {previous['assignment']}, not {assignment}")
    found = entries(out, assignment, late_plugin(course))
    for entry in found:
        if entry.result.status == "grader error" or (students is not None and entry.result.student not in students):
            continue
        write_feedback(out, assignment, entry.result, entry.scores, entry.state)
        atomic_write(out / "results" / f"{entry.result.student}.json", entry.result.to_json())
    batch = Batch(course=out, assignment=assignment, submissions=out, out=out, unsafe=not previous.get("sandbox", True))
    report(batch, {e.result.student: None for e in found}, previous.get("skipped", []),
           previous.get("resumed", []), previous.get("limits", ""))

