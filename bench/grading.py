"""Seconds per submission: sandboxed ``cvcourse grade`` vs stock ``nbgrader autograde``, one run.

    python bench/grading.py [--assignment 01_topk] [--students 6] [--jobs 2]

Both sides grade the same submissions (copies of the instructor's solution, markers removed)
of the same assignment in a temporary course directory:

* stock: nbgrader's ``autograde`` through its Python API, one student after another in one
  process, no sandbox (the kernel runs as you);
* sandboxed: ``cvcourse.grade.grade`` with ``--jobs 1`` (each student in a forked worker, the
  kernel in bubblewrap, the hidden checks in the grading process, feedback, gradebook update),
  then again with ``--jobs N``. Stock runs the hidden tests in the kernel (a plain run of
  ``hidden.run``).

Prints the median seconds per submission of each, their ratio (sandboxed / stock), and the
throughput of the parallel run in submissions per minute.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.M)


def _course(root: Path, assignment: str, students: int) -> Path:
    course = root / "course"
    (course / "solutions").mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", course)
    shutil.copytree(REPO / "solutions" / assignment, course / "solutions" / assignment)
    for path in sorted((course / "solutions" / assignment).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            cell.source = MARKER.sub("", cell.source)
        for i in range(students):
            for folder in (course / "submitted" / f"s{i}" / assignment, root / "submissions" / f"s{i}"):
                folder.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, folder / path.name)
    return course


def _stock(course: Path, assignment: str, students: int) -> list[float]:
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.course_id = "cv-fundamentals"
    config.CourseDirectory.source_directory = "solutions"
    config.CourseDirectory.release_directory = "notebooks"
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    api = NbGraderAPI(config=config)
    assert api.generate_assignment(assignment, force=True)["success"]
    seconds = []
    for i in range(students):
        start = time.perf_counter()
        result = api.autograde(assignment, f"s{i}", force=True, create=True)
        seconds.append(time.perf_counter() - start)
        assert result["success"], result["log"]
    return seconds


def _sandboxed(course: Path, submissions: Path, out: Path, assignment: str, jobs: int) -> tuple[list[float], float]:
    from cvcourse.grade import Batch, grade

    start = time.perf_counter()
    report = grade(Batch(course=course, assignment=assignment, submissions=submissions, out=out, jobs=jobs),
                   progress=lambda *_: None)
    wall = time.perf_counter() - start
    scores = {s: r["score"] == r["max_score"] and not r["review"] for s, r in report["students"].items()}
    assert all(scores.values()), f"the solution must get full marks: {json.dumps(report, indent=1)}"
    return [r["seconds"] for r in report["students"].values()], wall


def benchmark(assignment: str = "01_topk", students: int = 6, jobs: int = 2) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        course = _course(root, assignment, students)
        stock = _stock(course, assignment, students)
        serial, _ = _sandboxed(course, root / "submissions", root / "out1", assignment, jobs=1)
        _, wall = _sandboxed(course, root / "submissions", root / "outN", assignment, jobs=jobs)
    result = {"assignment": assignment, "students": students, "jobs": jobs,
              "stock_median_s": statistics.median(stock), "sandboxed_median_s": statistics.median(serial),
              "parallel_per_minute": 60 * students / wall}
    result["ratio"] = result["sandboxed_median_s"] / result["stock_median_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="01_topk")
    parser.add_argument("--students", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=2, help="workers for the parallel run")
    args = parser.parse_args()
    r = benchmark(args.assignment, args.students, args.jobs)
    print(f"{r['assignment']}, {r['students']} submissions (the solution), median seconds per submission:")
    print(f"  stock nbgrader autograde, no sandbox : {r['stock_median_s']:6.2f}")
    print(f"  cvcourse grade, sandboxed, 1 job     : {r['sandboxed_median_s']:6.2f}")
    print(f"  ratio sandboxed / stock              : {r['ratio']:6.2f}")
    print(f"  cvcourse grade, {r['jobs']} jobs, throughput  : {r['parallel_per_minute']:6.1f} submissions/min")


if __name__ == "__main__":
    main()
