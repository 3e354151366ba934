"""A graded course as it runs, end to end, on one machine: nbgrader's own loop with one exchange
(release, fetch, submit, collect; release and fetch feedback) around ``cvcourse grade`` as the
autograder and ``cvcourse review`` for the flagged submission, with formgrader's API showing the
autograded notebooks, and the grades exported for Canvas at the end (``cvcourse export``). The
course folder is the nbgrader course root and ``cvcourse grade``'s ``--out``, as the README tells an
instructor to run it.

The nbgrader steps run in this process through nbgrader's exchange classes (what ``nbgrader
release_assignment`` and the others run); ``cvcourse`` runs as the command.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from cvcourse.release import generate
from helpers import REPO

ASSIGNMENT = "03_conv_arithmetic"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
COURSE_ID = "cv-fundamentals"


def _nbgrader(app_class, root: Path, exchange: Path, student: str | None = None, home: Path | None = None):
    """Run one of nbgrader's exchange apps (ExchangeSubmit, ...) as its command would."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    cfg = Config()
    cfg.CourseDirectory.root = str(root)
    cfg.CourseDirectory.course_id = COURSE_ID
    cfg.CourseDirectory.release_directory = "notebooks"
    cfg.CourseDirectory.source_directory = "solutions"
    cfg.Exchange.root = str(exchange)
    if home is not None:  # a student's own home: the fetched assignment, and submit's cache (what
        cfg.Exchange.assignment_dir = str(home)  # fetch_feedback looks the feedback up by)
        cfg.Exchange.cache = str(home / ".nbgrader-cache")
    coursedir = CourseDirectory(config=cfg)
    coursedir.assignment_id = ASSIGNMENT
    if student:
        coursedir.student_id = student
    app = app_class(coursedir=coursedir, authenticator=Authenticator(config=cfg), config=cfg)
    app.start()


def _cvcourse(*args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "cvcourse", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"cvcourse {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def _solved(release: nbformat.NotebookNode, extra: str = "") -> nbformat.NotebookNode:
    """The fetched release with the instructor's solution pasted into its solution cells."""
    source = nbformat.read(REPO / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in release.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", "", answers[gid], flags=re.M)
    first = next(c for c in release.cells if c.metadata.get("nbgrader", {}).get("solution"))
    first.source += extra
    return release


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    from nbgrader.exchange.default import (ExchangeCollect, ExchangeFetchAssignment, ExchangeReleaseAssignment,
                                           ExchangeSubmit)

    base = tmp_path_factory.mktemp("course_loop")
    root, exchange = base / "course", base / "exchange"
    root.mkdir(), exchange.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", root)
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, root / "solutions" / ASSIGNMENT)
    generate(root, [ASSIGNMENT])  # cvcourse release: nbgrader's generate_assignment
    _nbgrader(ExchangeReleaseAssignment, root, exchange)
    homes = {}
    for student, extra in (("alice", ""), ("bob", "\nimport socket  # flagged: a network module\n")):
        home = homes[student] = base / "home" / student
        home.mkdir(parents=True)
        _nbgrader(ExchangeFetchAssignment, root, exchange, home=home)
        fetched = home / ASSIGNMENT / NOTEBOOK
        nbformat.write(_solved(nbformat.read(fetched, as_version=4), extra), fetched)
        _nbgrader(ExchangeSubmit, root, exchange, student=student, home=home)
    _nbgrader(ExchangeCollect, root, exchange)
    grade = _cvcourse("grade", ASSIGNMENT, str(root / "submitted"), "--course", str(root), "--out", str(root),
                      "--jobs", "2")
    return {"root": root, "exchange": exchange, "homes": homes, "grade": grade}


def test_collected_submissions_are_graded_and_the_flagged_one_waits_for_review(course):
    root = course["root"]
    assert sorted(p.name for p in (root / "submitted").iterdir()) == ["alice", "bob"]
    report = json.loads((root / "report.json").read_text())["students"]
    assert report["alice"]["status"] == "graded" and report["alice"]["score"] == report["alice"]["max_score"] > 0
    assert report["bob"]["review"] and report["bob"]["score"] == 0
    for student in ("alice", "bob"):  # nbgrader's own files are read, not reported as extra files
        assert not any("extra file" in n for n in report[student]["notes"]), report[student]["notes"]
        assert (root / "autograded" / student / ASSIGNMENT / "timestamp.txt").read_text() == \
            (root / "submitted" / student / ASSIGNMENT / "timestamp.txt").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_formgrader_lists_the_autograded_notebooks(course):
    """nbgrader's formgrader (its REST API, the server on 127.0.0.1) shows both students' autograded
    notebooks, the flagged one as needing a manual grade."""
    root, port, token = course["root"], _free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--ServerApp.jpserver_extensions={'nbgrader.server_extensions.formgrader': True}",
         "--ServerApp.open_browser=False", "--ServerApp.port_retries=0", *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".jupyter-config"),
             "JUPYTER_RUNTIME_DIR": str(root / ".jupyter-runtime")})
    try:
        url = f"http://127.0.0.1:{port}/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}"
        request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
        deadline, listing = time.monotonic() + 60, None
        while listing is None:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    listing = json.loads(response.read())
            except OSError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "formgrader did not answer within 60 s"
                time.sleep(0.3)
    finally:
        server.terminate()
        server.wait(timeout=30)
    by_student = {entry["student"]: entry for entry in listing}
    assert set(by_student) == {"alice", "bob"}, listing
    assert by_student["alice"]["score"] == by_student["alice"]["max_score"] > 0
    assert by_student["bob"]["needs_manual_grade"] and not by_student["alice"]["needs_manual_grade"]


def test_review_then_feedback_reaches_each_student_through_the_exchange(course):
    from nbgrader.exchange.default import ExchangeFetchFeedback, ExchangeReleaseFeedback

    root, exchange, homes = course["root"], course["exchange"], course["homes"]
    _cvcourse("review", ASSIGNMENT, "bob", "--accept", "--out", str(root), "--course", str(root))
    _nbgrader(ExchangeReleaseFeedback, root, exchange)
    pages = {}
    for student, home in homes.items():
        _nbgrader(ExchangeFetchFeedback, root, exchange, student=student, home=home)
        fetched = sorted((home / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
        assert len(fetched) == 1, f"{student} fetched {fetched}"
        pages[student] = fetched[0].read_text()
    report = json.loads((root / "report.json").read_text())["students"]
    most = report["alice"]["max_score"]
    assert f"Score: {most:g} / {most:g}</h2>" in pages["alice"]
    assert f"Score: {most:g} / {most:g} (reviewed)" in pages["bob"] and "pending review" not in pages["bob"]
    assert report["bob"]["score"] == most and not report["bob"]["review"]

    # The grades go to Canvas from the gradebook: the instructor's Canvas export is the mapping, the
    # exchange's student ids being Canvas's SIS Login IDs.
    roster = root / "canvas-export.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Assignment 3 (555),Current Score\n"
                      f"    Points Possible,,,,,{most:g},(read only)\n"
                      "\"A, Alice\",101,s101,alice,Lab 1,,\n\"B, Bob\",102,s102,bob,Lab 2,,\n")
    _cvcourse("export", ASSIGNMENT, "canvas", "--out", str(root), "--mapping", str(roster), "--key", "SIS Login ID",
              "--title", "Assignment 3", "--canvas-id", "555")
    with open(root / "export" / "canvas.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Assignment 3 (555)"],
                    ["A, Alice", "101", "s101", "alice", "Lab 1", f"{most:g}"],
                    ["B, Bob", "102", "s102", "bob", "Lab 2", f"{most:g}"]]  # bob's grade: the review's, not 0
