"""The command line on bad input: one line naming what is wrong, a non-zero exit, nothing written.
And ``cvcourse check`` on a notebook whose tests fail or whose cell runs forever."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from cvcourse.cli import main
from helpers import REPO


def _run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _notebook(path: Path, *cells: tuple[str, dict]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# Homework"))
    for source, grade in cells:
        cell = nbformat.v4.new_code_cell(source)
        if grade:
            cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 1, **grade}
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def _file(name: str, text: str):
    def make(folder: Path) -> Path:
        (folder / name).write_text(text)
        return folder / name
    return make


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "is a folder: give the notebook file inside it"),
    (_file("01_topk.ipynb", '{"cells": [{"cell_t'), "cannot read .* as a notebook"),
    (_file("01_topk.ipynb", '{"cells": 3}'), "cannot read .* as a notebook"),
    (_file("notes.md", "# not a notebook"), "is not a notebook: cvcourse check runs .ipynb files"),
    (lambda p: p / "nothing.ipynb", "does not exist"),
], ids=["folder", "truncated-json", "not-a-notebook-json", "markdown", "missing"])
def test_check_refuses_what_is_not_a_notebook(tmp_path, capsys, make, message):
    code, out, err = _run(capsys, "check", str(make(tmp_path)))
    assert code == 2
    assert re.search(message, err) and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("value", ["0", "-5", "ten"])
def test_check_refuses_a_timeout_that_is_no_limit(tmp_path, capsys, value):
    code, _, err = _run(capsys, "check", str(tmp_path / "x.ipynb"), "--timeout", value)
    assert code == 2 and "--timeout" in err and ("at least 1 second" in err or "whole number" in err), err


def test_check_names_the_failing_line_and_goes_on_past_a_cell_that_runs_forever(tmp_path, capsys):
    path = _notebook(tmp_path / "hw.ipynb",
                     ("def double(x):\n    return x + 1\n", {}),
                     ("assert double(1) == 2\nassert double(2) == 4, f'double(2): expected 4, got {double(2)}'\n",
                      {"grade_id": "test_double"}),
                     ("while True:\n    pass\n", {}),
                     ("assert double(0) == 1\n", {"grade_id": "test_zero"}))
    code, out, err = _run(capsys, "check", str(path), "--timeout", "3")
    assert code == 1
    assert ("test_double (1 points): FAILED: line 2: assert double(2) == 4, "
            "f'double(2): expected 4, got {double(2)}': AssertionError: double(2): expected 4, got 3") in out, out
    assert "cell 4 (while True:): FAILED: ran past 3 s and was interrupted" in out, out
    assert "test_zero (1 points): passed" in out, out  # the run went on after the interrupt
    assert "1 test cell(s) fail." in out
    assert "[1/4] cell 2 (def double(x):)" in err and "[4/4] test_zero" in err, err  # progress
    assert "Traceback" not in err and "without encryption" not in err, err


def test_release_without_solutions_is_one_line(tmp_path, capsys):
    code, _, err = _run(capsys, "release", "--course", str(tmp_path))
    assert code == 2 and "has no solutions/ folder" in err and "Traceback" not in err, err
    code, _, err = _run(capsys, "release", "01_topk", "--course", str(tmp_path))
    assert code == 2 and "no assignment '01_topk'" in err, err


def _course(tmp_path: Path, assignment: str) -> Path:
    course = tmp_path / "course"
    shutil.copytree(REPO / "solutions" / assignment, course / "solutions" / assignment)
    shutil.copy(REPO / "nbgrader_config.py", course)
    return course


def test_grade_refuses_bad_submission_folders_before_writing_anything(tmp_path, capsys):
    course, out = _course(tmp_path, "03_conv_arithmetic"), tmp_path / "out"
    grade = ("grade", "03_conv_arithmetic", "--course", str(course), "--out", str(out), "--unsafe-no-sandbox")

    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, *grade[:2], str(tmp_path / "empty"), *grade[2:])
    assert code == 2 and "no student folders in" in err, err

    (tmp_path / "a_file").write_text("")
    code, _, err = _run(capsys, *grade[:2], str(tmp_path / "a_file"), *grade[2:])
    assert code == 2 and "is a file, not a folder of submissions" in err, err

    other = tmp_path / "other"
    for student in ("ann", "bo"):
        (other / student).mkdir(parents=True)
        shutil.copy(REPO / "notebooks" / "09_imbalance" / "09_imbalance.ipynb", other / student)
    code, _, err = _run(capsys, *grade[:2], str(other), *grade[2:])
    assert code == 2, err
    assert ("none of the 2 submissions in" in err and "holds 03_conv_arithmetic.ipynb; they hold "
            "09_imbalance.ipynb (2). Are these the submissions of 03_conv_arithmetic?" in err), err
    assert not out.exists()


@pytest.mark.skipif(Path("/dev/nvidia0").exists(), reason="this host has a GPU")
def test_grade_gpu_without_a_gpu_refuses_before_grading(tmp_path, capsys):
    course, out = _course(tmp_path, "03_conv_arithmetic"), tmp_path / "out"
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "03_conv_arithmetic" / "03_conv_arithmetic.ipynb", tmp_path / "subs" / "ann")
    code, _, err = _run(capsys, "grade", "03_conv_arithmetic", str(tmp_path / "subs"), "--course", str(course),
                        "--out", str(out), "--gpu", "--unsafe-no-sandbox")
    assert code == 2 and "--gpu was given, but this host has no NVIDIA GPU" in err, err
    assert not out.exists()



def test_a_grader_side_failure_is_the_graders_exits_3_and_is_graded_again(tmp_path):
    """A kernel that cannot start (here: a sandbox command that exits at once) is not the
    student's fault: no grade, no feedback, exit 3; the next run grades the submission."""
    import json
    import subprocess
    import sys

    course, out, subs = _course(tmp_path, "03_conv_arithmetic"), tmp_path / "out", tmp_path / "subs"
    (subs / "ann").mkdir(parents=True)
    shutil.copy(REPO / "solutions" / "03_conv_arithmetic" / "03_conv_arithmetic.ipynb", subs / "ann")
    argv = ["grade", "03_conv_arithmetic", str(subs), "--course", str(course), "--out", str(out), "--jobs", "1"]
    broken = ("import sys, cvcourse.grade as g\n"
              "g.kernel_argv = lambda *a, **k: ['/bin/false', '{connection_file}']\n"
              "from cvcourse.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    first = subprocess.run([sys.executable, "-c", broken, *argv], capture_output=True, text=True, timeout=600)
    assert first.returncode == 3, first.stdout + first.stderr
    assert "could not be graded because of a grader-side error" in first.stderr and "ann" in first.stderr
    report = json.loads((out / "report.json").read_text())["students"]["ann"]
    assert report["status"] == "grader error" and report["grader_errors"], report
    assert not (out / "feedback" / "ann").exists()
    assert "Grader errors (not the students' fault" in (out / "report.md").read_text()

    second = subprocess.run([sys.executable, "-m", "cvcourse", *argv], capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 to grade, 0 already graded" in second.stdout
    report = json.loads((out / "report.json").read_text())["students"]["ann"]
    assert report["status"] == "graded" and report["score"] == report["max_score"] > 0, report
