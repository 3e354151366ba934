"""Flagged work through review: pending everywhere until an instructor grades it, then the
reviewed grade everywhere (gradebook, grades.csv, report, feedback), and kept by a re-run."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from helpers import REPO

ASSIGNMENT = "03_conv_arithmetic"


def _cvcourse(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cvcourse", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    course, subs, out = root / "course", root / "subs", root / "out"
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    config = (REPO / "nbgrader_config.py").read_text() + '\nc.LateSubmissionPlugin.penalty_method = "zero"\n'
    (course / "nbgrader_config.py").write_text(config)
    solution = nbformat.read(REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    for student, extra, submitted in (("mallory", "\nimport socket\n", "2026-12-01 20:00:00.000000 UTC"),
                                      ("late", "", "2026-12-02 01:59:00.000000 UTC")):
        nb = nbformat.from_dict(json.loads(json.dumps(solution)))
        first = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
        first.source += extra
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / f"{ASSIGNMENT}.ipynb")
        (subs / student / "timestamp.txt").write_text(submitted)  # as nbgrader's submit writes it
    grade = ("grade", ASSIGNMENT, str(subs), "--course", str(course), "--out", str(out), "--jobs", "2",
             "--due", "2026-12-01 23:59:00 UTC")
    done = _cvcourse(*grade)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"out": out, "grade": grade, "course": course}


def test_late_work_gets_the_penalty_of_nbgraders_late_submission_plugin(batch):
    out = batch["out"]
    late, on_time = _row(out, "late"), _row(out, "mallory")
    assert late["seconds_late"] == "7200" and late["score"] == "0" and late["late_penalty"] == late["max_score"], late
    assert late["auto_score"] == late["max_score"] and late["submitted"] == "2026-12-02T01:59:00", late
    assert on_time["seconds_late"] == "0" and on_time["late_penalty"] == "0", on_time
    assert f"the late-submission penalty takes {late['max_score']} points" in _feedback(out, "late")
    report = (out / "report.md").read_text()
    assert "## Late (nbgrader's late-submission plugin" in report and "2.0 h late, penalty" in report
    notes = json.loads((out / "results" / "late.json").read_text())["notes"]
    assert not any("timestamp.txt" in n for n in notes), notes  # read, not an extra file


def _row(out, student) -> dict:
    with open(out / "grades.csv", newline="") as f:
        return next(r for r in csv.DictReader(f) if r["student"] == student)


def _feedback(out, student) -> str:
    return (out / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()


def test_flagged_work_is_pending_review_everywhere_and_kept_for_formgrader(batch):
    out = batch["out"]
    row = _row(out, "mallory")
    assert row["score"] == "0" and float(row["auto_score"]) == float(row["max_score"]) > 0, row
    assert row["review"].startswith("pending: ") and "imports socket" in row["review"], row
    page = _feedback(out, "mallory")
    assert "Score: pending review" in page and f"{row['max_score']} / {row['max_score']}" not in page
    assert "Score: pending review" not in _feedback(out, "late")
    assert (out / "autograded" / "mallory" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()


def test_review_sets_a_grade_that_shows_everywhere_and_that_a_rerun_keeps(batch):
    out = batch["out"]
    listed = _cvcourse("review", ASSIGNMENT, "--out", str(out), "--course", str(batch["course"]))
    assert listed.returncode == 0, listed.stderr
    assert "1 flagged, 1 pending review" in listed.stdout and "mallory: pending" in listed.stdout
    assert "imports socket (line" in listed.stdout, listed.stdout

    cells = [name for name in _row(out, "mallory") if name.startswith("test_")]
    wrong = _cvcourse("review", ASSIGNMENT, "mallory", "--out", str(out), "--cell", "nosuch=1")
    assert wrong.returncode == 2 and "no graded cell 'nosuch'" in wrong.stderr, wrong.stderr
    wrong = _cvcourse("review", ASSIGNMENT, "mallory", "--out", str(out), "--cell", f"{cells[0]}=99")
    assert wrong.returncode == 2 and "takes 0 to" in wrong.stderr, wrong.stderr
    wrong = _cvcourse("review", ASSIGNMENT, "nobody", "--out", str(out), "--accept")
    assert wrong.returncode == 2 and "no graded student 'nobody'" in wrong.stderr, wrong.stderr

    maximum = float(_row(out, "mallory")["max_score"])
    lost = float(_row(out, "late")[cells[0]])  # the points of that cell (late's solution is the same)
    done = _cvcourse("review", ASSIGNMENT, "mallory", "--out", str(out), "--cell", f"{cells[0]}=0",
                     "--course", str(batch["course"]))
    assert done.returncode == 0, done.stderr
    expected = f"{maximum - lost:g}"
    row = _row(out, "mallory")
    assert row["score"] == expected and row[cells[0]] == "0" and row["review"] == "reviewed", row
    assert json.loads((out / "report.json").read_text())["students"]["mallory"]["reviewed"] is True
    assert f"Score: {expected} / {maximum:g} (reviewed)" in _feedback(out, "mallory")

    again = _cvcourse(*batch["grade"], "--force")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _row(out, "mallory")["score"] == expected
    notes = json.loads((out / "results" / "mallory.json").read_text())["notes"]
    assert any("kept the reviewed grade" in n for n in notes), notes
    assert f"Score: {expected} / {maximum:g} (reviewed)" in _feedback(out, "mallory")

    accepted = _cvcourse("review", ASSIGNMENT, "mallory", "--out", str(out), "--accept",
                         "--course", str(batch["course"]))
    assert accepted.returncode == 0, accepted.stderr
    assert _row(out, "mallory")["score"] == f"{maximum:g}"
    assert _row(out, "late")["review"] == ""
