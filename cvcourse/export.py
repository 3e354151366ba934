"""``cvcourse export``: the gradebook's grades in the files an LMS imports, and the feedback as zips.

Every grade comes from the nbgrader gradebook (``OUT/gradebook.db``) as nbgrader computes it: the
sum of the cells' scores (a manual score, from ``cvcourse review`` or formgrader, takes precedence
over the automatic one), less the late-submission penalty nbgrader stored, never below 0. A
submission with a cell that still needs a manual grade (flagged, pending review) exports **0**,
whatever the automatic score.

The grade exporters are nbgrader export plugins (:class:`nbgrader.plugins.ExportPlugin`), so
nbgrader's own command runs them too, from the course folder (its ``nbgrader_config.py`` names the
course)::

    nbgrader export --db sqlite:///OUT/gradebook.db --exporter cvcourse.export.CanvasExport \\
        --to canvas.csv --CanvasExport.mapping=roster.csv --CanvasExport.key=ID

``cvcourse export ASSIGNMENT FORMAT`` is a thin wrapper: it opens ``OUT/gradebook.db`` (and no
other database), runs the same plugin for one assignment, and also checks the batch's report
(``OUT/report.json``) for students whose grading failed on the grader's side (they have no grade).

Formats (``cvcourse export --help``):

* ``canvas``: Canvas's gradebook import CSV (:class:`CanvasExport`);
* ``moodle``: a CSV for Moodle's "Import grades > CSV file" (:class:`MoodleExport`);
* ``gradescope``: ``STUDENT/results.json`` in Gradescope's autograder format (:class:`GradescopeExport`);
* ``feedback-zip``: ``STUDENT.zip`` holding that student's feedback pages (:func:`feedback_zips`);
* ``moodle-feedback``: one zip for Moodle's "Upload multiple feedback files in a zip" (:func:`moodle_feedback_zip`).

Canvas and Moodle need the **mapping** from cvcourse's student id (the submission folder's name,
nbgrader's student id) to the LMS's identity of the student: a CSV file with one column holding
the student id (``--key``, default ``student``) and the LMS's identity columns (see
:data:`CANVAS_IDENTITY`, :data:`MOODLE_IDENTITY`). Canvas's own gradebook export is such a file
(``--key ID`` when the ids are Canvas user ids, as ``nbgrader zip_collect`` with the course's
Canvas pattern gives them; ``--key "SIS Login ID"`` when they are logins). A graded student missing
from the mapping, or a mapping row without a grade, is never dropped silently: nothing is written
and the export fails (exit 1) naming them, unless ``allow_unmatched`` (``--allow-unmatched``) is
set, when the others are exported and they are listed as a warning.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import stat
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.plugins import ExportPlugin
from traitlets import Bool, Dict, Unicode

__all__ = ["CANVAS_IDENTITY", "MOODLE_IDENTITY", "CanvasExport", "ExportError", "GradescopeExport", "Grade",
           "MoodleExport", "FORMATS", "Unmatched", "export", "feedback_zips", "moodle_feedback_zip", "open_gradebook",
           "read_grades", "read_mapping"]

# Canvas's gradebook CSV, checked against Canvas's source (instructure/canvas-lms):
# * lib/gradebook_exporter.rb writes the header "Student", "ID", "SIS User ID", "SIS Login ID",
#   "Section", then one column per assignment named by Assignment#title_with_id, "TITLE (ID)";
#   its second row is "    Points Possible" with each assignment's points.
# * lib/gradebook_importer.rb reads it back: the header must start with "Student", "ID" and end
#   its identity columns with "Section" ("SIS User ID" and "SIS Login ID" between them); every
#   other column not in its list of totals is an assignment, matched by the id in "TITLE (ID)"
#   (Assignment.title_and_id, /\A(.*)\s\((\d+)\)\z/), else by its exact title, else CREATED as a
#   new assignment; a row whose first cell contains "Points Possible" sets the assignments' points
#   (optional), rows of only "Muted"/"Manual Posting" are skipped; a student is matched by ID
#   (Canvas's user id), then SIS User ID, then SIS Login ID, then name. A blank (or "-") cell is
#   "no score": no change where Canvas has none, a change where it has one (no_change_to_value?).
# So the file holds exactly these five columns and one column per assignment, nothing else, and a
# student without a grade is left out rather than sent blank (a blank cell only where a student
# lacks one of several assignments, which is reported).
CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_REQUIRED = ("Student", "ID", "SIS Login ID", "Section")  # Canvas's export has "SIS User ID" only with SIS ids on
CANVAS_MATCHED_BY = ("ID", "SIS User ID", "SIS Login ID")
_CANVAS_TITLE_ID = re.compile(r"\A(.*)\s\((\d+)\)\Z", re.S)  # Canvas's Assignment.title_and_id
# Moodle's "Import grades > CSV file" (grade/import/csv, docs.moodle.org "Grade import"): any
# columns; the instructor maps one column to the user ("Map from" a column, "Map to" userid,
# username, useridnumber or useremail), each other column to a grade item or ignores it. The
# identity columns are named as Moodle's own grade export names them.
MOODLE_IDENTITY = ("ID number", "Username", "Email address")


class ExportError(ValueError):
    """Input the export cannot use: one line naming what is wrong; nothing is written."""

    code = 2


class Unmatched(ExportError):
    """Graded students missing from the mapping, or mapping rows without a grade (exit 1)."""

    code = 1


@dataclass
class Grade:
    """One student's grade for one assignment, as the gradebook holds it."""

    student: str
    assignment: str
    score: float  # the grade: max(0, raw - penalty); 0 while pending review
    max_score: float
    raw: float  # the cells' scores summed (manual over automatic), before the late penalty
    penalty: float  # nbgrader's late_submission_penalty
    state: str  # "" (graded by the tests), "pending" (a cell needs a manual grade), "reviewed"
    cells: list[tuple[str, str, float, float]] = field(default_factory=list)  # (notebook, grade_id, score, max)


def points(value: float) -> str:
    """A score as Canvas's exporter writes it (two decimals at most) and Moodle reads it."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


# -- the gradebook ------------------------------------------------------------------------------

def open_gradebook(out: Path):
    """The nbgrader gradebook ``out/gradebook.db``, opened with the course id its assignments belong
    to (so that nothing is added to it); ExportError when there is none, or it is not a gradebook."""
    from nbgrader.api import Gradebook

    db = out / "gradebook.db"
    if not db.is_file():
        raise ExportError(f"{out} holds no gradebook.db: run cvcourse grade first (or give --out)")
    try:
        con = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            courses = [row[0] for row in con.execute(
                "SELECT id FROM course ORDER BY id IN (SELECT course_id FROM assignment) DESC, id")]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise ExportError(f"{db} is not an nbgrader gradebook ({exc})") from None
    return Gradebook(f"sqlite:///{db.resolve()}", courses[0] if courses else "default_course")


def read_grades(gb, assignments: list[str] | None = None, students: list[str] | None = None
                ) -> tuple[list[str], list[Grade]]:
    """The assignments exported (``assignments``, default: every one in the gradebook) and the
    grade of every submission of theirs (of ``students`` only, when given), in the gradebook's
    terms (see the module docstring). ExportError for an assignment the gradebook lacks."""
    from nbgrader.api import MissingEntry

    known = sorted(a.name for a in gb.assignments)
    names = list(dict.fromkeys(assignments or known))
    for name in names:
        if name not in known:
            raise ExportError(f"the gradebook holds no assignment {name!r} (it holds: {', '.join(known) or 'none'})")
    grades = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy warnings
        for name in names:
            try:
                assignment = gb.find_assignment(name)
            except MissingEntry:  # pragma: no cover (listed above)
                raise ExportError(f"the gradebook holds no assignment {name!r}") from None
            for sub in sorted(assignment.submissions, key=lambda s: s.student.id):
                if students and sub.student.id not in students:
                    continue
                found = [(nb.name, g.name, float(g.score), float(g.max_score), bool(g.needs_manual_grade),
                          g.manual_score is not None) for nb in sub.notebooks for g in nb.grades]
                pending, manual = any(c[4] for c in found), any(c[5] for c in found)
                raw, penalty = float(sub.score), float(sub.late_submission_penalty or 0.0)
                grades.append(Grade(
                    student=sub.student.id, assignment=name, max_score=float(assignment.max_score), raw=raw,
                    penalty=penalty, score=0.0 if pending else max(0.0, raw - penalty),
                    state="pending" if pending else "reviewed" if manual else "",
                    cells=sorted((nb, gid, 0.0 if pending else score, most) for nb, gid, score, most, _, _ in found)))
    return names, grades


# -- the mapping ---------------------------------------------------------------------------------

def _canvas_filler(cells: dict[str, str]) -> bool:
    """A row of Canvas's gradebook export that is no student: "Points Possible", or the row of
    "Muted" / "Manual Posting" marks (as Canvas's importer skips them)."""
    first = next(iter(cells.values()), "")
    return "Points Possible" in first or all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", v, re.I)
                                             for v in cells.values())


def read_mapping(path: Path, key: str, required: tuple[str, ...] = (), any_of: tuple[str, ...] = ()
                 ) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Read a mapping CSV (UTF-8, a header row): its columns and ``{student id: row}`` in file
    order, the student id taken from column ``key``. The header must have every column of
    ``required`` and one of ``any_of``; every student row a student id, used once, and a value in
    one of ``any_of``. Rows of blank cells, and Canvas's "Points Possible" and "Muted" rows (no
    student id), are skipped. ExportError names the file, the row and what is wrong."""
    if not path.is_file():
        raise ExportError(f"mapping file {path} does not exist" if not path.exists()
                          else f"mapping file {path} is not a file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExportError(f"mapping file {path} is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8") from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ExportError(f"mapping file {path} is not a CSV file: {exc}") from None
    if not rows or not any(c.strip() for c in rows[0]):
        raise ExportError(f"mapping file {path} is empty (expected a header row naming its columns)")
    header = [c.strip() for c in rows[0]]
    if len(set(header)) != len(header):
        twice = sorted({c for c in header if header.count(c) > 1})
        raise ExportError(f"mapping file {path}: column(s) named twice: {', '.join(map(repr, twice))}")
    if key not in header:
        raise ExportError(f"mapping file {path} has no column {key!r} (its columns: {', '.join(header)}); "
                          "name the column holding the student id with --key")
    missing = [c for c in required if c not in header]
    if any_of and not any(c in header for c in any_of):
        missing.append(" or ".join(repr(c) for c in any_of))
    if missing:
        raise ExportError(f"mapping file {path} lacks the column(s) {', '.join(missing)} (its columns: "
                          f"{', '.join(header)})")
    mapping: dict[str, dict[str, str]] = {}
    lines: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) > len(header) and any(c.strip() for c in row[len(header):]):
            raise ExportError(f"mapping file {path}, row {number}: {len(row)} cells for {len(header)} columns")
        cells = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
        if not any(cells.values()):
            continue
        student = cells[key]
        if not student:
            if _canvas_filler(cells):
                continue
            raise ExportError(f"mapping file {path}, row {number}: no student id in column {key!r}")
        if student in mapping:
            raise ExportError(f"mapping file {path}, row {number}: student {student!r} again (first on row "
                              f"{lines[student]})")
        if any_of and not any(cells.get(c) for c in any_of):
            raise ExportError(f"mapping file {path}, row {number} (student {student!r}): no value in "
                              f"{' or '.join(repr(c) for c in any_of if c in header)}")
        mapping[student], lines[student] = cells, number
    return header, mapping


def _names(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _refuse_or_note(problems: list[str], allow_unmatched: bool, others: str = "exports the others") -> list[str]:
    """Students that do not match: an :class:`Unmatched` error naming them (nothing is written),
    or, with ``allow_unmatched``, the notes to print."""
    if problems and not allow_unmatched:
        raise Unmatched("; ".join(problems) + f"; nothing written (--allow-unmatched {others})")
    return problems


def match(assignments: list[str], grades: list[Grade], mapping: dict[str, dict], source: str,
          allow_unmatched: bool) -> tuple[dict[tuple[str, str], Grade], list[str]]:
    """``{(student, assignment): grade}`` for the students of the mapping, and the warnings: the
    graded students missing from the mapping, and the mapping rows without a grade (per
    assignment). Either is an :class:`Unmatched` error unless ``allow_unmatched``."""
    by_key = {(g.student, g.assignment): g for g in grades}
    unmapped = sorted({g.student for g in grades} - set(mapping))
    ungraded = [f"{s} ({a})" if len(assignments) > 1 else s
                for s in mapping for a in assignments if (s, a) not in by_key]
    problems = []
    if unmapped:
        problems.append(f"{len(unmapped)} graded student(s) not in the mapping {source}: {_names(unmapped)}")
    if ungraded:
        problems.append(f"{len(ungraded)} student(s) of the mapping without a grade in the gradebook "
                        f"(no submission, or not graded): {_names(ungraded)}")
    return {k: g for k, g in by_key.items() if k[0] in mapping}, _refuse_or_note(problems, allow_unmatched)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


# -- nbgrader export plugins ---------------------------------------------------------------------

class _Export(ExportPlugin):
    """Shared by the exporters: nbgrader's ``export()`` runs :meth:`run`, logging its warnings;
    an :class:`ExportError` is logged as one line and exits (2, or 1 for :class:`Unmatched`)."""

    def export(self, gradebook) -> None:
        try:
            for line in self.run(gradebook):
                self.log.warning(line)
        except ExportError as exc:
            self.log.error(str(exc))
            raise SystemExit(exc.code) from None

    written = 0  # the students the last run wrote

    def run(self, gradebook) -> list[str]:
        """Write the export to ``self.to``; return the warnings. Raises ExportError."""
        raise NotImplementedError

    def _grades(self, gradebook) -> tuple[list[str], list[Grade]]:
        return read_grades(gradebook, [str(a) for a in self.assignment], [str(s) for s in self.student])


class _MappedExport(_Export):
    mapping = Unicode("", help="CSV file mapping each student id (column `key`) to the LMS's identity "
                               "columns (required)").tag(config=True)
    key = Unicode("student", help="the mapping's column holding the nbgrader student id").tag(config=True)
    allow_unmatched = Bool(False, help="export the students that match and warn about the others (graded "
                                       "students missing from the mapping, mapping rows without a grade), "
                                       "instead of failing").tag(config=True)
    titles = Dict({}, help="the LMS's name of each assignment, {assignment: title} (default: the "
                           "assignment's name)").tag(config=True)
    required: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    default_to = ""

    def _mapped(self, gradebook):
        if not self.mapping:
            raise ExportError(f"{type(self).__name__} needs the mapping file (cvcourse export --mapping FILE, "
                              f"nbgrader export --{type(self).__name__}.mapping=FILE)")
        header, mapping = read_mapping(Path(self.mapping), self.key, self.required, self.any_of)
        assignments, grades = self._grades(gradebook)
        found, notes = match(assignments, grades, mapping, f"{self.mapping} (column {self.key!r})",
                             self.allow_unmatched)
        return header, mapping, assignments, found, notes

    def title(self, assignment: str) -> str:
        return str(self.titles.get(assignment, assignment))


class CanvasExport(_MappedExport):
    """Canvas's gradebook import CSV: the columns ``Student, ID, SIS User ID, SIS Login ID,
    Section`` (from the mapping; ``SIS User ID`` blank when the mapping lacks it, as in a Canvas
    export without SIS ids) and one column per assignment, ``TITLE (CANVAS_ID)`` when the Canvas
    id is given in ``canvas_ids`` (Canvas matches on it), else ``TITLE`` (Canvas matches the exact
    title, or creates a new assignment). No other column: Canvas would create an assignment for it.
    One row per mapping row with a grade; a blank cell where a student has no submission of one
    of several assignments (reported: see :func:`match`). With ``points_possible``, Canvas's
    optional second row, each assignment's maximum (Canvas reads the assignments' points from it).
    """

    canvas_ids = Dict({}, help="Canvas's id of each assignment, {assignment: id} (the number in the "
                               "assignment's Canvas URL): its column is then 'TITLE (ID)'").tag(config=True)
    points_possible = Bool(False, help="write Canvas's 'Points Possible' row (Canvas then sets each "
                                       "assignment's points to the nbgrader maximum)").tag(config=True)
    required, any_of = CANVAS_REQUIRED, CANVAS_MATCHED_BY
    default_to = "canvas.csv"

    def column(self, assignment: str) -> str:
        title = self.title(assignment).strip()
        if not title or "\n" in title or "\r" in title:
            raise ExportError(f"the Canvas title of {assignment!r} must be one non-empty line, got {title!r}")
        canvas_id = str(self.canvas_ids.get(assignment, "")).strip()
        if canvas_id and not canvas_id.isdigit():
            raise ExportError(f"a Canvas assignment id is a number (the one in the assignment's URL), "
                              f"got {canvas_id!r}")
        if not canvas_id and _CANVAS_TITLE_ID.match(title):
            raise ExportError(f"the title {title!r} ends in '(digits)', which Canvas reads as an assignment id: "
                              "give the Canvas id as well")
        return f"{title} ({canvas_id})" if canvas_id else title

    def run(self, gradebook) -> list[str]:
        header, mapping, assignments, found, notes = self._mapped(gradebook)
        columns = [self.column(a) for a in assignments]
        rows = [[*CANVAS_IDENTITY, *columns]]
        if self.points_possible:
            maxima = {g.assignment: g.max_score for g in found.values()}
            rows.append(["    Points Possible", "", "", "", "",
                         *[points(maxima[a]) if a in maxima else "" for a in assignments]])
        for student, cells in mapping.items():
            grades = [found.get((student, a)) for a in assignments]
            if any(grades):
                rows.append([cells.get(c, "") for c in CANVAS_IDENTITY]
                            + [points(g.score) if g else "" for g in grades])
        self.written = len(rows) - 1 - self.points_possible
        _write(Path(self.to or self.default_to), _csv(rows))
        return notes


class MoodleExport(_MappedExport):
    """A CSV for Moodle's "Import grades > CSV file": the identity columns of the mapping among
    ``ID number``, ``Username``, ``Email address`` (in that order; at least one), then one column
    per assignment named by its title. One row per mapping row with a grade (a row without one is
    left out rather than sent blank). In Moodle: map "Email address" (or "ID number", "Username")
    to the user, and each assignment's column to its grade item."""

    required, any_of = (), MOODLE_IDENTITY
    default_to = "moodle.csv"

    def run(self, gradebook) -> list[str]:
        header, mapping, assignments, found, notes = self._mapped(gradebook)
        identity = [c for c in MOODLE_IDENTITY if c in header]
        titles = [self.title(a).strip() for a in assignments]
        if any(not t or "\n" in t or t in identity for t in titles) or len(set(titles)) != len(titles):
            raise ExportError(f"the Moodle column titles must be distinct, non-empty single lines, not an "
                              f"identity column: {titles}")
        rows = [[*identity, *titles]]
        for student, cells in mapping.items():
            grades = [found.get((student, a)) for a in assignments]
            if any(grades):
                rows.append([cells[c] for c in identity] + [points(g.score) if g else "" for g in grades])
        self.written = len(rows) - 1
        _write(Path(self.to or self.default_to), _csv(rows))
        return notes


def _folder_name(student: str) -> str:
    """The student id as a single folder or file name; ExportError if it cannot be one."""
    from .integrity import student_id

    name, why = student_id(student)
    if name != student or why or student in (".", ".."):
        raise ExportError(f"student id {student!r} cannot name a file ({why or 'not in normal form'})")
    return student


PENDING = "Pending review: an instructor grades this submission by hand; 0 until then."


class GradescopeExport(_Export):
    """Gradescope's autograder ``results.json`` per student, ``TO/STUDENT/results.json`` (``to``
    is a folder), per Gradescope's autograder specification
    (gradescope-autograders.readthedocs.io, "Autograder Specifications"): a top-level ``score``
    (optional there when every test has one; given here, as it is the grade: after the late
    penalty, which the tests' sum is not), ``output``, and one test per graded cell (``name``,
    ``score``, ``max_score``, ``status``, ``output``). A student pending review gets score 0, every
    test 0, and an output saying so.
    One assignment only (Gradescope grades one). With ``results`` (a cvcourse ``results/``
    folder), a failing cell's output names the reason the grader found."""

    results = Unicode("", help="cvcourse's results/ folder, for the reason each failing cell failed").tag(config=True)
    default_to = "gradescope"

    def _reasons(self, student: str) -> dict[tuple[str, str], str]:
        path = Path(self.results) / f"{student}.json" if self.results else None
        if path is None or not path.is_file():
            return {}
        data = json.loads(path.read_text())
        return {(nb.removesuffix(".ipynb"), gid): str(why)[:2000]
                for nb, score in data.get("notebooks", {}).items() for gid, why in score.get("failed", {}).items()}

    def run(self, gradebook) -> list[str]:
        assignments, grades = self._grades(gradebook)
        if len(assignments) != 1:
            raise ExportError(f"Gradescope takes one assignment at a time; give one (the gradebook holds "
                              f"{', '.join(assignments)})")
        target = Path(self.to or self.default_to)
        files = {_folder_name(g.student): g for g in grades}
        for student, g in files.items():
            reasons = self._reasons(student)
            several = len({nb for nb, *_ in g.cells}) > 1
            tests = []
            for nb, gid, score, most in g.cells:
                test = {"name": f"{nb}: {gid}" if several else gid, "score": score, "max_score": most}
                if g.state == "pending":
                    test["output"] = PENDING
                else:
                    test["status"] = "passed" if score >= most else "failed"
                    test["output"] = (f"{points(score)} / {points(most)} points"
                                      + (" (graded by hand)" if g.state == "reviewed" else "")
                                      + (f": {reasons[nb, gid]}" if (nb, gid) in reasons and score < most else ""))
                tests.append(test)
            if g.state == "pending":
                output = PENDING
            else:
                output = f"Grade: {points(g.score)} / {points(g.max_score)}" + (
                    " (reviewed by an instructor)" if g.state == "reviewed" else "") + (
                    f"; the late-submission penalty took {points(g.penalty)} of {points(g.raw)} points"
                    if g.penalty > 0 else "")
            result = {"score": g.score, "output": output, "tests": tests}
            _write(target / student / "results.json", json.dumps(result, indent=1))
        self.written = len(files)
        return []


# -- feedback zips -------------------------------------------------------------------------------

_PAGE = re.compile(r"\A[^/\\\x00-\x1f]+\.html\Z")


def _pages(folder: Path) -> list[Path]:
    """The feedback pages in ``folder``: regular ``*.html`` files (not links), not hidden."""
    pages = []
    for path in sorted(folder.iterdir()):
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode) and _PAGE.match(path.name) and not path.name.startswith("."):
            pages.append(path)
    return pages


def _feedback(out: Path, assignment: str) -> tuple[dict[str, list[Path]], list[str]]:
    """``{student: pages}`` of ``out/feedback/STUDENT/ASSIGNMENT/``, and notes on what was left out."""
    root, found, notes = out / "feedback", {}, []
    if not root.is_dir():
        raise ExportError(f"{out} holds no feedback/ folder: run cvcourse grade first (or give --out)")
    for entry in sorted(root.iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            notes.append(f"left out feedback/{entry.name!r}: not a folder")
            continue
        try:
            student = _folder_name(entry.name)
        except ExportError as exc:
            notes.append(f"left out feedback/{entry.name!r}: {exc}")
            continue
        folder = entry / assignment
        if folder.is_dir() and not folder.is_symlink():
            pages = _pages(folder)
            if pages:
                found[student] = pages
            else:
                notes.append(f"{student}: no feedback page in feedback/{student}/{assignment}/")
    return found, notes


def _zip(path: Path, members: list[tuple[str, Path]]) -> None:
    """Write ``path`` (atomically) holding each file under its name in the archive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), source.read_bytes(),
                             compress_type=zipfile.ZIP_DEFLATED)
    os.replace(tmp, path)


def feedback_zips(out: Path, assignment: str, target: Path) -> tuple[list[Path], list[str]]:
    """``target/STUDENT.zip`` for every student with feedback for ``assignment``: that student's
    feedback pages (the ``*.html`` of ``out/feedback/STUDENT/ASSIGNMENT/``, regular files only),
    at the top of the archive, for an instructor to attach in the LMS. Returns the zips and notes
    on what was left out (a folder whose name is no student id, a link, a folder without pages)."""
    found, notes = _feedback(out, assignment)
    written = []
    for student, pages in found.items():
        path = target / f"{student}.zip"
        if path.resolve().parent != target.resolve():  # _folder_name already refuses; never trust it alone
            raise ExportError(f"student id {student!r} would write outside {target}")
        _zip(path, [(p.name, p) for p in pages])
        written.append(path)
    return written, notes


# Moodle's bulk download prefixes a student's files (or names their folder) "FULL NAME_PARTICIPANT_
# assignsubmission_file_", underscores in the name made spaces (mod/assign/locallib.php,
# download_submissions); the course's zip_collect pattern keeps "FULL NAME_PARTICIPANT" as the id.
MOODLE_STUDENT = re.compile(r"\A(?P<name>[^_/]*)_(?P<participant>\d+)(?:_assignsubmission_file_?)?\Z")


def moodle_feedback_zip(out: Path, assignment: str, target: Path, allow_unmatched: bool = False
                        ) -> tuple[int, list[str]]:
    """One zip for Moodle's "Upload multiple feedback files in a zip" (assignfeedback_file's
    importziplib.php): each page as ``FULL NAME_PARTICIPANT_assignfeedback_file_PAGE.html``;
    Moodle finds the student by the participant number (the second ``_`` field), so only the
    students whose id carries one (:data:`MOODLE_STUDENT`, as Moodle's download names them) can be
    in it. The others are an :class:`Unmatched` error unless ``allow_unmatched`` (then a note).
    Returns the number of students in the zip and the notes."""
    found, notes = _feedback(out, assignment)
    members, other = [], []
    for student, pages in found.items():
        m = MOODLE_STUDENT.match(student)
        if not m:
            other.append(student)
            continue
        members += [(f"{m['name']}_{m['participant']}_assignfeedback_file_{p.name}", p) for p in pages]
    if other:
        notes += _refuse_or_note([f"{len(other)} student id(s) without a Moodle participant number ('Full Name_1234', "
                                  f"as Moodle's download names them): {_names(other)}"], allow_unmatched,
                                 "zips the others")
    if not members:
        raise ExportError(f"no feedback to zip for Moodle in {out / 'feedback'}")
    _zip(target, members)
    return len(found) - len(other), notes


# -- cvcourse export -----------------------------------------------------------------------------

FORMATS = ("canvas", "moodle", "gradescope", "feedback-zip", "moodle-feedback")
_DEFAULT_TO = {"canvas": "canvas.csv", "moodle": "moodle.csv", "gradescope": "gradescope",
               "feedback-zip": "feedback", "moodle-feedback": "moodle-feedback.zip"}


def _not_graded(out: Path, assignment: str) -> list[str]:
    """The students of the batch in ``out`` whose last grading failed on the grader's side (no
    grade was recorded for them): from ``out/results/``, when ``out/report.json`` is ``assignment``'s."""
    try:
        report = json.loads((out / "report.json").read_text())
    except (OSError, ValueError):
        return []
    if report.get("assignment") != assignment:
        return []
    return sorted(s for s, r in report.get("students", {}).items() if r.get("status") == "grader error")


def export(out: Path, assignment: str, fmt: str, *, to: Path | None = None, mapping: Path | None = None,
           key: str = "student", title: str | None = None, canvas_id: str | None = None,
           points_possible: bool = False, allow_unmatched: bool = False) -> tuple[str, list[str]]:
    """``cvcourse export``: write ``fmt`` for ``assignment`` from the graded batch ``out`` (to
    ``to``, default ``out/export/`` and the format's name); return a summary line and the
    warnings. ExportError (nothing written) for bad input; :class:`Unmatched` for students that do
    not match, unless ``allow_unmatched``."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    given = {"--mapping": mapping is not None, "--key": key != "student", "--title": title is not None,
             "--canvas-id": canvas_id is not None, "--points-possible": points_possible}
    allowed = {"canvas": set(given), "moodle": {"--mapping", "--key", "--title"}}.get(fmt, set())
    wrong = [option for option, used in given.items() if used and option not in allowed]
    if wrong:
        raise ExportError(f"{', '.join(wrong)}: not for {fmt} (--mapping, --key and --title are for canvas and "
                          "moodle, --canvas-id and --points-possible for canvas)")
    if canvas_id is not None and not canvas_id.strip().isdigit():
        raise ExportError(f"a Canvas assignment id is a number (the one in the assignment's URL), got {canvas_id!r}")
    if fmt in ("canvas", "moodle") and mapping is None:
        raise ExportError(f"{fmt} needs --mapping FILE: a CSV with a {key!r} column (the student ids) and "
                          f"the {'Canvas' if fmt == 'canvas' else 'Moodle'} identity columns (see README)")
    target = to if to is not None else out / "export" / _DEFAULT_TO[fmt]
    with open_gradebook(out) as gb:  # refuses a folder without a gradebook, for every format
        _, grades = read_grades(gb, [assignment])
        failed = _not_graded(out, assignment)
        notes = _refuse_or_note([f"{len(failed)} student(s) not graded (a grader-side error; run cvcourse grade "
                                 f"again): {_names(failed)}"] if failed else [], allow_unmatched)
        if fmt == "feedback-zip":
            zips, more = feedback_zips(out, assignment, target)
            return f"{assignment}: {len(zips)} feedback zip(s) in {target}", notes + more
        if fmt == "moodle-feedback":
            count, more = moodle_feedback_zip(out, assignment, target, allow_unmatched)
            return f"{assignment}: the feedback of {count} student(s) in {target}", notes + more
        options = {"to": str(target), "assignment": [assignment]}
        if fmt == "gradescope":
            plugin = GradescopeExport(results=str(out / "results"), **options)
        else:
            options.update(mapping=str(mapping), key=key, allow_unmatched=allow_unmatched,
                           titles={assignment: title} if title is not None else {})
            plugin = (CanvasExport(canvas_ids={assignment: canvas_id} if canvas_id is not None else {},
                                   points_possible=points_possible, **options)
                      if fmt == "canvas" else MoodleExport(**options))
        notes += plugin.run(gb)
    return f"{assignment}: {plugin.written} of {len(grades)} graded student(s) written to {target}", notes
