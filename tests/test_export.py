"""Grades an LMS accepts, from the gradebook: Canvas's and Moodle's bulk downloads collected by
real ``nbgrader zip_collect`` with the course's patterns and graded by ``cvcourse grade``; then
``cvcourse export`` to Canvas, Moodle and Gradescope, the feedback zipped, and bad input refused.

One graded batch serves the whole module (grading costs about 5 s of CPU per student): the Canvas
student is late and flagged, then reviewed by hand, so their grade is the reviewed score less the
late penalty; the Moodle student is flagged and still pending review (0, whatever the tests gave).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from cvcourse.cli import main
from helpers import REPO

ASSIGNMENT = "03_conv_arithmetic"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
DUE, LATE = "2026-12-01 23:59:00 UTC", "2026-12-02 01:59:00.000000 UTC"  # two hours late
# The files as the LMSes name them in "download all submissions" (see nbgrader_config.py):
CANVAS = {"obrienpat_LATE_23456_900002_03_conv_arithmetic-1.ipynb": "flagged"}  # a renamed notebook
MOODLE = {"Ann Marie_1234_assignsubmission_file_03_conv_arithmetic.ipynb": "flagged",  # one file per name
          "Bo Li_1235_assignsubmission_file_/03_conv_arithmetic.ipynb": "solved",  # a folder per student
          "Bo Li_1235_assignsubmission_onlinetext_/onlinetext.html": "<p>see my notebook</p>"}
STUDENTS = ["23456", "Ann Marie_1234"]  # graded
REVIEWED, PENDING = STUDENTS
COLLECTED_ONLY = "Bo Li_1235"  # collected, then set aside: a third student would add ~5 s
# Canvas's import columns, as Canvas's own code has them (instructure/canvas-lms:
# lib/gradebook_exporter.rb writes them, lib/gradebook_importer.rb reads them; see cvcourse/export.py).
CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
# The course's penalty: one point off a late notebook, through nbgrader's late-submission plugin.
PENALTY = 1.0
LATE_PLUGIN = '''
from nbgrader.plugins import LateSubmissionPlugin


class OnePointOff(LateSubmissionPlugin):
    def late_submission_penalty(self, student_id, score, total_seconds_late):
        return 1.0


c.AssignLatePenalties.plugin_class = OnePointOff
'''


def _cvcourse(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cvcourse", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd)


def _nbgrader(*args, cwd) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def _zip(path: Path, files: dict[str, str], notebooks: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, kind in files.items():
            archive.writestr(name, notebooks.get(kind, kind))


def _cells() -> dict[str, float]:
    nb = nbformat.read(REPO / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    course, out = root / "course", root / "out"
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    (course / "notebooks" / ASSIGNMENT).mkdir(parents=True)  # zip_collect checks names against the release
    shutil.copy(REPO / "notebooks" / ASSIGNMENT / NOTEBOOK, course / "notebooks" / ASSIGNMENT)
    config = (REPO / "nbgrader_config.py").read_text() + LATE_PLUGIN
    (course / "nbgrader_config.py").write_text(config)
    solved = nbformat.read(REPO / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    flagged = nbformat.from_dict(json.loads(json.dumps(solved)))
    next(c for c in flagged.cells if c.metadata.get("nbgrader", {}).get("solution")).source += "\nimport socket\n"
    notebooks = {"solved": nbformat.writes(solved), "flagged": nbformat.writes(flagged)}

    archive = course / "downloaded" / ASSIGNMENT / "archive"
    _zip(archive / "canvas-submissions.zip", CANVAS, notebooks)
    _nbgrader("zip_collect", ASSIGNMENT, cwd=course)  # the course's pattern: Canvas
    (archive / "canvas-submissions.zip").unlink()
    _zip(archive / "moodle-submissions.zip", MOODLE, notebooks)
    (course / "nbgrader_config.py").write_text(config + "\nc.FileNameCollectorPlugin.named_regexp = MOODLE_FILES\n")
    _nbgrader("zip_collect", "--force", ASSIGNMENT, cwd=course)
    submitted = course / "submitted"

    assert sorted(p.name for p in submitted.iterdir()) == sorted([*STUDENTS, COLLECTED_ONLY])
    collected_only = root / "collected-only"
    shutil.move(submitted / COLLECTED_ONLY, collected_only)
    (submitted / REVIEWED / ASSIGNMENT / "timestamp.txt").write_text(LATE)  # as nbgrader's collect keeps it
    grade = _cvcourse("grade", ASSIGNMENT, str(submitted), "--course", str(course), "--out", str(out),
                      "--jobs", "2", "--due", DUE)
    assert grade.returncode == 0, grade.stdout + grade.stderr
    cells = _cells()
    first = next(iter(cells))
    assert main(["review", ASSIGNMENT, REVIEWED, "--cell", f"{first}=0", "--out", str(out),
                 "--course", str(course)]) == 0
    full = sum(cells.values())
    expected = {REVIEWED: full - cells[first] - PENALTY, PENDING: 0.0}
    assert 0 < expected[REVIEWED] < full - max(cells[first], PENALTY)  # neither alone, nor the automatic score
    return {"root": root, "course": course, "out": out, "cells": cells, "first": first, "full": full,
            "expected": expected, "collected_only": collected_only}


def _export(capsys, out: Path, fmt: str, *args) -> tuple[int, str, str]:
    try:
        code = main(["export", ASSIGNMENT, fmt, "--out", str(out), *args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    stdout, stderr = capsys.readouterr()
    return code, stdout, stderr


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _mapping(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def _canvas_mapping(tmp_path: Path) -> Path:
    return _mapping(tmp_path / "roster.csv", ["student", *CANVAS_HEADER], [
        [PENDING, "Marie, Ann", "34567", "S-3", "amarie", "Section B"],
        [REVIEWED, "O'Brien, Pat", "23456", "", "pobrien", "Section A"]])


def test_zip_collect_files_canvas_and_moodle_downloads_for_cvcourse_grade(batch):
    submitted = batch["course"] / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == sorted(STUDENTS)
    held = {s: sorted(p.name for p in (submitted / s / ASSIGNMENT).iterdir()) for s in STUDENTS}
    assert held == {REVIEWED: [NOTEBOOK.replace(".ipynb", "-1.ipynb"), "timestamp.txt"], PENDING: [NOTEBOOK]}, held
    # Moodle's folder layout, its online-text file left out (not a notebook):
    assert sorted(p.name for p in batch["collected_only"].rglob("*") if p.is_file()) == [NOTEBOOK]
    report = json.loads((batch["out"] / "report.json").read_text())["students"]
    assert sorted(report) == sorted(STUDENTS) and all(r["status"] == "graded" for r in report.values()), report
    assert any("renamed" in n for n in report[REVIEWED]["notes"]), report[REVIEWED]["notes"]
    assert report[REVIEWED]["reviewed"] and report[REVIEWED]["late_penalty"] == PENALTY
    assert report[REVIEWED]["score"] == batch["expected"][REVIEWED]
    assert report[PENDING]["review"] and report[PENDING]["score"] == 0
    assert report[PENDING]["auto_score"] == batch["full"] > 0  # the tests passed; the grade waits for review


def test_canvas_csv_has_exactly_canvas_columns_and_the_gradebook_grades(batch, tmp_path, capsys):
    target = tmp_path / "canvas.csv"
    code, stdout, stderr = _export(capsys, batch["out"], "canvas", "--mapping", str(_canvas_mapping(tmp_path)),
                                   "--title", "Convolution arithmetic", "--canvas-id", "777", "--points-possible",
                                   "--to", str(target))
    assert code == 0 and not stderr, stderr
    assert "2 of 2 graded student(s)" in stdout
    rows = _rows(target)
    assert rows[0] == [*CANVAS_HEADER, "Convolution arithmetic (777)"]  # nothing Canvas would make an assignment of
    assert rows[1] == ["    Points Possible", "", "", "", "", f"{batch['full']:g}"]  # as Canvas's export writes it
    assert rows[2:] == [["Marie, Ann", "34567", "S-3", "amarie", "Section B", "0"],  # pending review: 0
                        ["O'Brien, Pat", "23456", "", "pobrien", "Section A", f"{batch['expected'][REVIEWED]:g}"]]

    plain = tmp_path / "plain.csv"  # without a Canvas id, the column is the title (Canvas matches it exactly)
    code = _export(capsys, batch["out"], "canvas", "--mapping", str(tmp_path / "roster.csv"), "--to", str(plain))[0]
    assert code == 0
    assert _rows(plain)[0] == [*CANVAS_HEADER, ASSIGNMENT] and _rows(plain)[1:] == rows[2:]


def test_canvas_own_gradebook_export_as_the_mapping_and_unmatched_students(batch, tmp_path, capsys):
    """The instructor's Canvas export ("Export Entire Gradebook") keyed by Canvas's user id, which
    zip_collect took from Canvas's file names: its other columns are not copied, its "Points
    Possible" and "Manual Posting" rows are skipped, and nobody is dropped silently."""
    exported = _mapping(tmp_path / "Grades-CV.csv", [*CANVAS_HEADER, "Conv arithmetic (777)", "Current Score",
                                                     "Final Score"], [
        ["", "", "", "", "", "Manual Posting", "", ""],
        ["    Points Possible", "", "", "", "", "10", "(read only)", "(read only)"],
        ["O'Brien, Pat", "23456", "S-2", "pobrien", "Section A", "4", "40", "40"],
        ["Student, Test", "99999", "", "test", "Section A", "", "", ""]])
    target = tmp_path / "canvas.csv"
    code, _, stderr = _export(capsys, batch["out"], "canvas", "--mapping", str(exported), "--key", "ID",
                              "--to", str(target))
    assert code == 1 and len(stderr.strip().splitlines()) == 1, stderr
    assert f"1 graded student(s) not in the mapping {exported} (column 'ID'): {PENDING};" in stderr, stderr
    assert "1 student(s) of the mapping without a grade in the gradebook" in stderr and "99999" in stderr, stderr
    assert "nothing written" in stderr and not target.exists()

    code, stdout, stderr = _export(capsys, batch["out"], "canvas", "--mapping", str(exported), "--key", "ID",
                                   "--to", str(target), "--allow-unmatched")
    assert code == 0 and stderr.count("cvcourse export: warning:") == 2, stderr
    assert PENDING in stderr and "99999" in stderr and "1 of 2 graded student(s)" in stdout
    reviewed = f"{batch['expected'][REVIEWED]:g}"
    assert _rows(target) == [[*CANVAS_HEADER, ASSIGNMENT],
                             ["O'Brien, Pat", "23456", "S-2", "pobrien", "Section A", reviewed]]


def test_moodle_csv_names_moodles_identity_columns(batch, tmp_path, capsys):
    mapping = _mapping(tmp_path / "moodle-roster.csv", ["Email address", "student", "ID number"], [
        ["pat@uni.example", REVIEWED, "1002"], ["ann@uni.example", PENDING, "1003"]])
    target = tmp_path / "moodle.csv"
    code, _, stderr = _export(capsys, batch["out"], "moodle", "--mapping", str(mapping), "--to", str(target),
                              "--title", "Conv arithmetic")
    assert code == 0 and not stderr, stderr
    # Moodle's "Import grades > CSV file" maps any columns; these are named as Moodle's grade export names them.
    assert _rows(target) == [["ID number", "Email address", "Conv arithmetic"],
                             ["1002", "pat@uni.example", f"{batch['expected'][REVIEWED]:g}"],
                             ["1003", "ann@uni.example", "0"]]


def test_gradescope_results_per_student(batch, tmp_path, capsys):
    target = tmp_path / "gs"
    code, _, stderr = _export(capsys, batch["out"], "gradescope", "--to", str(target))
    assert code == 0 and not stderr, stderr
    assert sorted(p.name for p in target.iterdir()) == sorted(STUDENTS)
    results = {s: json.loads((target / s / "results.json").read_text()) for s in STUDENTS}
    cells = batch["cells"]
    for student, result in results.items():  # Gradescope's autograder specification: score, output, tests
        assert set(result) == {"score", "output", "tests"}, result
        assert result["score"] == batch["expected"][student], result
        assert {t["name"]: t["max_score"] for t in result["tests"]} == cells
        assert all(set(t) <= {"name", "score", "max_score", "status", "output"} for t in result["tests"])
    pending = results[PENDING]
    assert "Pending review" in pending["output"]
    assert all(t["score"] == 0 and "Pending review" in t["output"] and "status" not in t for t in pending["tests"])
    reviewed = results[REVIEWED]
    assert sum(t["score"] for t in reviewed["tests"]) == batch["full"] - cells[batch["first"]]  # before the penalty
    assert f"penalty took {PENALTY:g} of" in reviewed["output"] and "reviewed" in reviewed["output"]
    tests = {t["name"]: t for t in reviewed["tests"]}
    assert tests[batch["first"]]["score"] == 0 and tests[batch["first"]]["status"] == "failed"
    assert "graded by hand" in tests[batch["first"]]["output"]


def test_feedback_zips_hold_only_each_students_feedback_pages(batch, tmp_path, capsys):
    out = tmp_path / "out"  # a copy, given a link and a folder that no student id names
    shutil.copytree(batch["out"], out, symlinks=True, ignore=shutil.ignore_patterns("autograded", ".work"))
    (out / "feedback" / PENDING / ASSIGNMENT / "secret.html").symlink_to(batch["course"] / "nbgrader_config.py")
    (out / "feedback" / ".hidden" / ASSIGNMENT).mkdir(parents=True)
    (out / "feedback" / ".hidden" / ASSIGNMENT / "x.html").write_text("x")
    code, stdout, stderr = _export(capsys, out, "feedback-zip")
    assert code == 0, stderr
    assert "left out feedback/'.hidden'" in stderr and "2 feedback zip(s)" in stdout
    zips = out / "export" / "feedback"
    assert sorted(p.name for p in zips.iterdir()) == sorted(f"{s}.zip" for s in STUDENTS)
    assert (out / "feedback" / REVIEWED / ASSIGNMENT / "timestamp.txt").is_file()  # beside the page, not zipped
    for student in STUDENTS:
        with zipfile.ZipFile(zips / f"{student}.zip") as archive:
            assert archive.namelist() == [NOTEBOOK.replace(".ipynb", ".html")], archive.namelist()
            page = archive.read(archive.namelist()[0]).decode()
        assert page == (out / "feedback" / student / ASSIGNMENT / archive.namelist()[0]).read_text()
        assert ("Score: pending review" in page) == (student == PENDING)

    target = tmp_path / "moodle-feedback.zip"
    code, _, stderr = _export(capsys, out, "moodle-feedback", "--to", str(target))
    assert code == 1 and f"without a Moodle participant number ('Full Name_1234', as Moodle's download names " \
        f"them): {REVIEWED}" in stderr, stderr
    assert not target.exists()
    code, _, stderr = _export(capsys, out, "moodle-feedback", "--to", str(target), "--allow-unmatched")
    assert code == 0 and "warning" in stderr, stderr
    with zipfile.ZipFile(target) as archive:  # Moodle reads the participant number in the second "_" field
        assert archive.namelist() == [f"Ann Marie_1234_assignfeedback_file_{ASSIGNMENT}.html"]


def test_nbgrader_export_runs_the_same_plugin(batch, tmp_path, capsys):
    mapping = _canvas_mapping(tmp_path)
    ours = tmp_path / "ours.csv"
    assert _export(capsys, batch["out"], "canvas", "--mapping", str(mapping), "--to", str(ours))[0] == 0
    theirs = tmp_path / "theirs.csv"
    _nbgrader("export", f"--db=sqlite:///{batch['out'] / 'gradebook.db'}", "--course=cv-fundamentals",
              "--exporter=cvcourse.export.CanvasExport", f"--to={theirs}", f"--CanvasExport.mapping={mapping}",
              cwd=tmp_path)
    assert theirs.read_text() == ours.read_text()
    db = f"--db=sqlite:///{batch['out'] / 'gradebook.db'}"
    wrong = subprocess.run([sys.executable, "-m", "nbgrader", "export", db, "--course=cv-fundamentals",
                            "--exporter=cvcourse.export.CanvasExport", f"--to={tmp_path / 'x.csv'}"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert wrong.returncode == 2 and "needs the mapping file" in wrong.stderr, wrong.stderr
    assert not (tmp_path / "x.csv").exists()


def _bytes(name: str, data: bytes):
    def make(folder: Path) -> list[str]:
        (folder / name).write_bytes(data)
        return ["--mapping", str(folder / name)]
    return make


def _options(*args):
    return lambda folder: list(args)


@pytest.mark.parametrize("fmt, make, message", [
    ("blackboard", _options(), "unknown format 'blackboard' (formats: canvas, moodle, gradescope"),
    ("canvas", _options(), "canvas needs --mapping FILE"),
    ("canvas", _options("--mapping", "/nonexistent/roster.csv"), "mapping file /nonexistent/roster.csv does not exist"),
    ("canvas", _bytes("r.csv", b"name,ID\nx,1\n"), "has no column 'student' (its columns: name, ID)"),
    ("canvas", _bytes("r.csv", b"student,ID\n12345,1\n"), "lacks the column(s) Student, SIS Login ID, Section"),
    ("canvas", _bytes("r.csv", ",".join(["student", *CANVAS_HEADER]).encode() + b"\n12345,a,1,,l,s\n12345,b,2,,m,s\n"),
     "row 3: student '12345' again (first on row 2)"),
    ("canvas", _bytes("r.csv", b"student,Student,ID,SIS Login ID,Section\n12345,a,,,s\n"),
     "row 2 (student '12345'): no value in 'ID' or 'SIS Login ID'"),
    ("moodle", _bytes("r.csv", b"\xff\xfes\x00t\x00"), "is not UTF-8 text"),
    ("moodle", _bytes("r.csv", b""), "is empty"),
    ("moodle", _bytes("r.csv", b"student,Email address\n12345,a@b,extra\n"), "row 2: 3 cells for 2 columns"),
    ("moodle", _bytes("r.csv", b"student,Full name\n12345,A\n"), "lacks the column(s) 'ID number' or 'Username' or"),
    ("canvas", _options("--mapping", "x.csv", "--canvas-id", "abc"), "a Canvas assignment id is a number"),
    ("gradescope", _options("--mapping", "x.csv"), "--mapping: not for gradescope"),
], ids=["format", "no-mapping", "missing-file", "no-key-column", "missing-canvas-columns", "duplicate",
        "no-canvas-identity", "not-utf8", "empty", "extra-cells", "no-moodle-identity", "canvas-id", "option"])
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(batch, tmp_path, capsys, fmt, make, message):
    target = tmp_path / "written"
    code, stdout, stderr = _export(capsys, batch["out"], fmt, "--to", str(target), *make(tmp_path))
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and not stdout, (code, stderr)
    assert stderr.startswith("cvcourse export: ") and message in stderr, stderr
    assert not target.exists()


def test_a_folder_without_a_gradebook_or_assignment_is_refused(batch, tmp_path, capsys):
    code, _, stderr = _export(capsys, tmp_path, "gradescope")
    assert code == 2 and f"{tmp_path} holds no gradebook.db: run cvcourse grade first" in stderr, stderr
    assert not (tmp_path / "gradebook.db").exists()  # nothing created
    (tmp_path / "gradebook.db").write_bytes(b"not a database" * 100)
    code, _, stderr = _export(capsys, tmp_path, "gradescope")
    assert code == 2 and "is not an nbgrader gradebook" in stderr and len(stderr.splitlines()) == 1, stderr
    code, _, stderr = _export(capsys, batch["out"], "gradescope", "--to", str(tmp_path / "gs"))
    assert code == 0, stderr
    (tmp_path / "a-file").write_text("")
    code, _, stderr = _export(capsys, batch["out"], "feedback-zip", "--to", str(tmp_path / "a-file" / "zips"))
    assert code == 2 and "cvcourse export: cannot write" in stderr and len(stderr.splitlines()) == 1, stderr
    try:
        code = main(["export", "01_topk", "gradescope", "--out", str(batch["out"])])
    finally:
        _, stderr = capsys.readouterr()
    assert code == 2 and f"holds no assignment '01_topk' (it holds: {ASSIGNMENT})" in stderr, stderr


def test_a_student_the_grader_failed_is_named_not_dropped(batch, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(batch["out"], out, ignore=shutil.ignore_patterns("autograded", ".work", "feedback"))
    report = json.loads((out / "report.json").read_text())
    report["students"]["Cy_9"] = {"status": "grader error"}  # graded again later; no grade in the gradebook yet
    (out / "report.json").write_text(json.dumps(report))
    code, _, stderr = _export(capsys, out, "gradescope")
    assert code == 1 and "1 student(s) not graded (a grader-side error" in stderr and "Cy_9" in stderr, stderr
    assert not (out / "export").exists()


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's add_submission
def test_several_assignments_through_the_plugin_give_one_canvas_column_each(tmp_path):
    """nbgrader export's path (the plugin on a gradebook of two assignments, built with nbgrader's
    API): one column per assignment, a blank cell where a student lacks one, and that reported."""
    from nbgrader.api import Gradebook

    from cvcourse.export import CanvasExport, Unmatched
    from cvcourse.gradebook import stamp

    stamp(tmp_path / "gradebook.db")  # nbgrader's alembic version, without its 2 s subprocess
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}", "course") as gb:
        for name in ("a1", "a2"):
            gb.add_assignment(name)
            gb.add_notebook("nb", name)
            gb.add_grade_cell("t", "nb", name, max_score=2.0, cell_type="code")
        for student, assignments in (("s1", ("a1", "a2")), ("s2", ("a1",))):
            gb.add_student(student)
            for name in assignments:
                gb.add_submission(name, student)
                grade = gb.find_grade("t", "nb", name, student)
                grade.auto_score, grade.needs_manual_grade = (1.5 if name == "a2" else 2.0), False
        gb.db.commit()
        mapping = _mapping(tmp_path / "m.csv", ["student", *CANVAS_HEADER],
                           [["s1", "One", "11", "", "one", "A"], ["s2", "Two", "12", "", "two", "A"]])
        plugin = CanvasExport(mapping=str(mapping), to=str(tmp_path / "c.csv"), canvas_ids={"a1": "5", "a2": "6"})
        with pytest.raises(Unmatched, match=r"1 student\(s\) of the mapping without a grade .*: s2 \(a2\)"):
            plugin.run(gb)
        assert not (tmp_path / "c.csv").exists()
        plugin.allow_unmatched = True
        assert plugin.run(gb) and plugin.written == 2
    assert _rows(tmp_path / "c.csv") == [[*CANVAS_HEADER, "a1 (5)", "a2 (6)"],
                                         ["One", "11", "", "one", "A", "2", "1.5"],
                                         ["Two", "12", "", "two", "A", "2", ""]]
