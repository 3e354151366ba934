"""The nbgrader round trip, for every assignment in solutions/.

In a temporary course directory: regenerate the student release and compare it with the
committed notebooks/; check the release leaks no solution or hidden test; grade, with
`cvcourse grade` (nbgrader's autograde with each kernel in a sandbox), the instructor solution
(full marks) and crafted submissions from tests/submissions/ (each with the scores its
expected.json states). Every assignment has one, ``hardcoded``, that hard-codes the visible tests'
answers: it must pass them and still get zero on every cell, which says more than the untouched
release getting zero would (its stubs fail the visible tests already; the sandbox catalogue grades
an untouched release too).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cvcourse.release import generate
from helpers import REPO

ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _notebooks(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*.ipynb"))
            if ".ipynb_checkpoints" not in p.parts}


def _submit(course: Path, assignment: str, student: str, notebooks: dict[str, nbformat.NotebookNode]):
    folder = course / "submissions" / student / assignment
    folder.mkdir(parents=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / name)


def _release(course: Path, assignment: str) -> dict[str, nbformat.NotebookNode]:
    return {name: nbformat.read(p, as_version=4)
            for name, p in _notebooks(course / "notebooks" / assignment).items()}


MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.M)


def _crafted(course: Path, assignment: str, folder: Path) -> dict[str, nbformat.NotebookNode]:
    """The release with each solution cell replaced by folder/GRADE_ID.py where one exists, and
    by the instructor's solution (markers removed) where none does: a crafted submission holds
    only the cells it gets wrong."""
    notebooks = _release(course, assignment)
    replacements = {p.stem: p.read_text() for p in folder.glob("*.py")}
    solutions = {grade_id(cell): MARKER.sub("", cell.source)
                 for p in _notebooks(course / "solutions" / assignment).values()
                 for cell in nbformat.read(p, as_version=4).cells
                 if cell.metadata.get("nbgrader", {}).get("solution")}
    used = set()
    for nb in notebooks.values():
        for cell in nb.cells:
            if grade_id(cell) in replacements:
                cell.source = replacements[grade_id(cell)]
                used.add(grade_id(cell))
            elif cell.metadata.get("nbgrader", {}).get("solution"):
                cell.source = solutions[grade_id(cell)]
    assert used == set(replacements), f"{folder}: no solution cell for {set(replacements) - used}"
    return notebooks


def _cell_scores(gradebook, assignment, student):
    submission = gradebook.find_submission(assignment, student)
    return {grade.name: (grade.score, grade.max_score)
            for nb in submission.notebooks for grade in nb.grades}


@pytest.fixture(scope="class")
def course(request, tmp_path_factory):
    """A course directory holding the config and the source; the release generated in it."""
    assignment = request.cls.assignment
    course = tmp_path_factory.mktemp(f"course_{assignment}")
    shutil.copy(REPO / "nbgrader_config.py", course)
    shutil.copytree(REPO / "solutions" / assignment, course / "solutions" / assignment)
    generate(course, [assignment])  # `cvcourse release`'s own code: nbgrader's generate_assignment
    return course, assignment


@pytest.fixture(scope="class")
def graded(course):
    """Grade every submission of the assignment with the instructor's command, ``cvcourse grade``
    (each in its own sandbox); return the gradebook it wrote."""
    from nbgrader.api import Gradebook

    course, assignment = course
    crafted = sorted(p for p in (REPO / "tests" / "submissions" / assignment).glob("*") if p.is_dir())
    _submit(course, assignment, "solution", {name: nbformat.read(p, as_version=4) for name, p in
                                             _notebooks(course / "solutions" / assignment).items()})
    for folder in crafted:
        _submit(course, assignment, folder.name, _crafted(course, assignment, folder))
    result = subprocess.run([sys.executable, "-m", "cvcourse", "grade", assignment, str(course / "submissions"),
                             "--course", str(course), "--out", str(course / "graded"), "--jobs", "1"],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"cvcourse grade failed:\n{result.stdout}\n{result.stderr}"
    report = json.loads((course / "graded" / "report.json").read_text())
    flagged = {s: {k: r[k] for k in ("status", "flags", "timeouts", "crashed", "malformed")}
               for s, r in report["students"].items() if r["review"] or r["status"] != "graded"}
    assert not flagged, f"honest submissions must be graded without review flags: {flagged}"
    gradebook = Gradebook(f"sqlite:///{course / 'graded' / 'gradebook.db'}", "cv-fundamentals")
    yield gradebook, assignment, [f.name for f in crafted]
    gradebook.close()


class RoundTrip:
    """The round trip of one assignment; a ``Test_<assignment>`` subclass per folder of solutions/
    (one class each, so pytest-xdist's ``--dist loadscope`` grades assignments in parallel)."""

    assignment: str

    def test_committed_release_is_the_generated_one(self, course):
        course, assignment = course
        generated = _notebooks(course / "notebooks" / assignment)
        committed = _notebooks(REPO / "notebooks" / assignment)
        assert generated, "generate_assignment produced no notebook"
        assert committed.keys() == generated.keys(), "notebooks/ is out of date: run `cvcourse release`"
        for name in generated:
            assert json.loads(committed[name].read_text()) == json.loads(generated[name].read_text()), (
                f"notebooks/{assignment}/{name} differs from the release generated from solutions/: "
                f"run `python -m cvcourse release {assignment}` and commit the result")

    def test_release_leaks_no_solution_or_hidden_test(self, course):
        course, assignment = course
        for name, source_path in _notebooks(course / "solutions" / assignment).items():
            source = nbformat.read(source_path, as_version=4)
            release_path = course / "notebooks" / assignment / name
            release_text = release_path.read_text()
            release = nbformat.read(release_path, as_version=4)
            assert "### BEGIN" not in release_text and "### END" not in release_text
            secret = {line.strip() for cell in source.cells for _, body in REGION.findall(cell.source)
                      for line in body.splitlines() if len(line.strip()) >= 12}
            assert secret, f"{name} has no solution or hidden-test region to protect"
            released = {line.strip() for cell in release.cells for line in cell.source.splitlines()}
            leaked = sorted(secret & released)
            assert not leaked, f"lines of solutions/hidden tests found in the release: {leaked[:5]}"
            assert all(not cell.get("outputs") for cell in release.cells), "the release must carry no outputs"

    def test_solution_gets_full_marks(self, graded):
        gradebook, assignment, _ = graded
        submission = gradebook.find_submission(assignment, "solution")
        assert submission.max_score > 0
        assert submission.score == submission.max_score, _cell_scores(gradebook, assignment, "solution")
        assert not submission.needs_manual_grade

    def test_crafted_submissions_get_their_expected_scores(self, graded):
        """Each crafted submission's folder states, in expected.json, its score on every graded cell."""
        gradebook, assignment, crafted = graded
        for name in crafted:
            path = REPO / "tests" / "submissions" / assignment / name / "expected.json"
            assert path.is_file(), f"{path.relative_to(REPO)} is missing: state the scores it must get"
            expected = json.loads(path.read_text())
            scores = {cell: score for cell, (score, _) in _cell_scores(gradebook, assignment, name).items()}
            assert scores == expected, f"{assignment}/{name}: got {scores}, expected {expected}"

    def test_hardcoded_visible_answers_pass_visible_tests_but_fail_hidden_ones(self, graded, course):
        gradebook, assignment, crafted = graded
        course, _ = course
        assert "hardcoded" in crafted, f"tests/submissions/{assignment}/hardcoded is missing"
        # It really does pass what the student can see: in the notebook the grader ran (kept in
        # nbgrader's autograded/ layout), every graded cell's visible tests ran without an error.
        executed = _notebooks(course / "graded" / "autograded" / "hardcoded" / assignment)
        assert executed.keys() == _notebooks(course / "notebooks" / assignment).keys()
        for name, path in executed.items():
            graded_cells = [c for c in nbformat.read(path, as_version=4).cells
                            if c.metadata.get("nbgrader", {}).get("grade")]
            assert graded_cells
            for cell in graded_cells:
                errors = [o for o in cell.outputs if o.output_type == "error"]
                assert cell.metadata["cvcourse"]["status"] == "ok" and not errors, (name, grade_id(cell), errors)
                assert "### BEGIN HIDDEN TESTS" in cell.source  # the cell as graded, not its kernel half
        scores = _cell_scores(gradebook, assignment, "hardcoded")
        assert scores and all(score == 0 for score, _ in scores.values()), scores


for _assignment in ASSIGNMENTS:
    globals()[f"Test_{_assignment}"] = type(f"Test_{_assignment}", (RoundTrip,), {"assignment": _assignment})


# -- one score whatever the grading host ------------------------------------------------------------

DEVICE_BUG = "\n_honest = topk_error\n\n\ndef topk_error(logits, target, k):\n" \
             "    return _honest(logits + torch.zeros(logits.shape[-1]), target, k)  # a CPU tensor: fails on CUDA\n"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA device")
def test_grading_with_the_gpu_gives_the_score_grading_without_it_gives(tmp_path):
    """``--gpu`` adds 01's CUDA cases; a submission that fails only there gets a note, and the same
    score as on a CPU-only host."""
    assignment = "01_topk"
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", course)
    shutil.copytree(REPO / "solutions" / assignment, course / "solutions" / assignment)
    generate(course, [assignment])
    solution = {name: nbformat.read(p, as_version=4) for name, p in _notebooks(course / "solutions" / assignment).items()}
    _submit(course, assignment, "solution", solution)
    buggy = json.loads(json.dumps(solution))
    cell = next(c for nb in buggy.values() for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("solution"))
    cell["source"] = "".join(cell["source"]) + DEVICE_BUG
    _submit(course, assignment, "device_bug", {n: nbformat.from_dict(nb) for n, nb in buggy.items()})
    reports = {}
    for host, extra in (("cpu", []), ("gpu", ["--gpu"])):
        done = subprocess.run([sys.executable, "-m", "cvcourse", "grade", assignment, str(course / "submissions"),
                               "--course", str(course), "--out", str(tmp_path / host), "--jobs", "1", *extra],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert ("GPU: " in done.stdout) == (host == "gpu"), done.stdout
        reports[host] = json.loads((tmp_path / host / "report.json").read_text())["students"]
    for student in ("solution", "device_bug"):
        assert reports["gpu"][student]["score"] == reports["cpu"][student]["score"] == 7, reports
    notes = reports["gpu"]["device_bug"]["notes"]
    assert any("on CUDA (not counted)" in n for n in notes), notes
    assert not any("CUDA" in n for n in reports["cpu"]["device_bug"]["notes"] + reports["gpu"]["solution"]["notes"])
