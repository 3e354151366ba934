"""Command line: ``cvcourse release``, ``check``, ``grade``, ``review``, ``export`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _release(args) -> int:
    from .release import ReleaseError, generate

    try:
        written = generate(args.course, args.assignments or None)
    except ReleaseError as exc:
        print(f"cvcourse release: {exc}", file=sys.stderr)
        return 2
    course = args.course.resolve()
    for folder in written:
        print(f"released {folder.relative_to(course)}/")
    return 0


def _check(args) -> int:
    from .check import CheckError, check, read_notebook

    try:
        nb = read_notebook(args.notebook)
    except CheckError as exc:
        print(f"cvcourse check: {exc}", file=sys.stderr)
        return 2
    outcome = check(nb, args.notebook.parent.resolve(), args.timeout)
    print("\n".join(outcome.lines))
    print("All visible tests pass; the grader also runs hidden tests." if not outcome.failed else
          f"{outcome.failed} test cell(s) fail.")
    return 1 if outcome.failed else 0


def _seconds(text: str) -> int:
    """argparse type: a whole, positive number of seconds."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 second, got {value}")
    return value


def _grade(args) -> int:
    from .sandbox import Limits, SandboxUnavailable, check_bwrap

    if args.unsafe_no_sandbox:
        print("cvcourse grade: WARNING: --unsafe-no-sandbox: student code runs as you, with your files and "
              "network; only the resource limits apply.", file=sys.stderr)
    else:
        try:
            check_bwrap()
        except SandboxUnavailable as exc:
            print(f"cvcourse grade: refusing to grade without a sandbox: {exc}\n"
                  "(pass --unsafe-no-sandbox to run student code unsandboxed, at your own risk)", file=sys.stderr)
            return 2
    from .grade import Batch, BatchError, grade
    from .hidden import AuthoringError

    try:
        limits = Limits(cell_timeout=args.cell_timeout, wall=args.wall, cpu=args.cpu, memory_mb=args.memory_mb,
                        output_kb=args.output_kb, processes=args.processes)
    except ValueError as exc:  # names the limit, e.g. "Limits.cpu must be a positive int, got 0"
        print(f"cvcourse grade: {exc} (--cell-timeout, --wall, --cpu, --memory-mb, --output-kb, --processes)", file=sys.stderr)
        return 2
    out = args.out or Path("graded") / args.assignment
    batch = Batch(course=args.course.resolve(), assignment=args.assignment, submissions=args.submissions.resolve(),
                  out=out.resolve(), limits=limits, jobs=args.jobs, gpu=args.gpu, unsafe=args.unsafe_no_sandbox,
                  force=args.force, due=args.due)
    try:
        report = grade(batch)
    except (BatchError, FileNotFoundError) as exc:
        print(f"cvcourse grade: {exc}", file=sys.stderr)
        return 2
    except AuthoringError as exc:
        print(f"cvcourse grade: the hidden tests of {args.assignment} do not follow the two-halves form "
              f"(see cvcourse/hidden.py): {exc}", file=sys.stderr)
        return 2
    students = report["students"].values()
    print(f"graded {len(report['students'])} submissions ({len(report['resumed'])} resumed), "
          f"{sum(s['review'] for s in students)} flagged for review; see {out / 'report.md'}")
    failed = sorted(name for name, s in report["students"].items() if s["status"] == "grader error")
    if failed:
        print(f"cvcourse grade: {len(failed)} submission(s) could not be graded because of a grader-side error "
              f"(no grade recorded; run the command again to retry them): {', '.join(failed[:10])}", file=sys.stderr)
        return 3
    return 0


def _utc(text: str):
    """argparse type: a date and time, as nbgrader reads them (a time zone name or offset last)."""
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(text)
    except (ValueError, OverflowError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date and time (e.g. '2026-12-01 23:59:00 UTC')") from None


def _points(text: str) -> tuple[str, float]:
    """argparse type: ``GRADE_ID=POINTS``."""
    gid, sep, value = text.partition("=")
    try:
        if not sep or not gid:
            raise ValueError
        return gid, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not GRADE_ID=POINTS (for example test_values=2)") from None


def _review(args) -> int:
    from .review import ReviewError, entries, refresh, set_grade

    out = (args.out or Path("graded") / args.assignment).resolve()
    try:
        if args.student:
            entry = set_grade(out, args.assignment, args.student, accept=args.accept, reject=args.reject,
                              cells=dict(args.cell), course=args.course.resolve())
            r = entry.result
            print(f"{r.student}: reviewed, grade {r.score:g}/{r.max_score:g} (automatic {r.auto_score:g}); "
                  f"gradebook, grades.csv, report and feedback updated")
            return 0
        if args.accept or args.reject or args.cell:
            raise ReviewError("name the STUDENT to --accept, --reject or --cell")
        if args.refresh:
            refresh(out, args.assignment, course=args.course.resolve())
        found = entries(out, args.assignment)
    except ReviewError as exc:
        print(f"cvcourse review: {exc}", file=sys.stderr)
        return 2
    flagged = [e for e in found if e.result.flags or e.state]
    pending = sum(e.state == "pending" for e in flagged)
    print(f"{args.assignment}: {len(flagged)} flagged, {pending} pending review"
          + ("; grades.csv, report and feedback rewritten from the gradebook" if args.refresh else ""))
    for e in flagged:
        r = e.result
        print(f"  {r.student}: {e.state or 'not pending'}, grade {r.score:g}/{r.max_score:g} "
              f"(automatic {r.auto_score:g}), {r.status}")
        for flag in r.flags:
            print(f"      {flag}")
    if pending:
        print(f"review with: cvcourse review {args.assignment} STUDENT --accept | --reject | --cell GRADE_ID=POINTS"
              " (or in nbgrader's formgrader, then --refresh)")
    return 0


def _export(args) -> int:
    from .export import ExportError, export

    out = (args.out or Path("graded") / args.assignment).resolve()
    try:
        summary, notes = export(out, args.assignment, args.format, to=args.to, mapping=args.mapping, key=args.key,
                                title=args.title, canvas_id=args.canvas_id, points_possible=args.points_possible,
                                allow_unmatched=args.allow_unmatched)
    except ExportError as exc:  # bad input (2); students that do not match (1): nothing written
        print(f"cvcourse export: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:  # a --to that cannot be written
        print(f"cvcourse export: cannot write {exc.filename or args.to}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"cvcourse export: warning: {note}", file=sys.stderr)
    print(summary)
    return 0


def main(argv=None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="cvcourse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="regenerate notebooks/ from solutions/ (nbgrader generate_assignment)")
    p.add_argument("assignments", nargs="*", help="assignment folders in solutions/ (default: all)")
    p.add_argument("--course", type=Path, default=Path("."), help="course directory (default: .)")
    p.set_defaults(run=_release)
    p = sub.add_parser("check", help="run a notebook and report its visible tests (for students)")
    p.add_argument("notebook", type=Path)
    p.add_argument("--timeout", type=_seconds, default=600,
                   help="seconds per cell before it is interrupted (default 600)")
    p.set_defaults(run=_check)
    p = sub.add_parser("grade", help="grade a folder of untrusted submissions, each in a sandbox")
    p.add_argument("assignment")
    p.add_argument("submissions", type=Path, help="folder with one sub-folder per student")
    p.add_argument("--course", type=Path, default=Path("."), help="course directory holding solutions/ (default: .)")
    p.add_argument("--out", type=Path, help="output folder (default: graded/ASSIGNMENT)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="submissions graded at once (default: one per CPU core; each may use --memory-mb)")
    p.add_argument("--cell-timeout", type=int, default=120, help="seconds per cell before it is interrupted")
    p.add_argument("--wall", type=int, default=900, help="seconds per submission before it is killed")
    p.add_argument("--cpu", type=int, default=600, help="CPU seconds per kernel")
    p.add_argument("--memory-mb", type=int, default=4096, help="kernel memory (data segment) limit")
    p.add_argument("--output-kb", type=int, default=1024, help="output kept per notebook")
    p.add_argument("--processes", type=int, default=256,
                   help="processes and threads of the whole sandbox, where the host offers cgroups (pids.max)")
    p.add_argument("--gpu", action="store_true", help="pass the host's NVIDIA devices into the sandbox")
    p.add_argument("--force", action="store_true", help="grade again even the submissions already graded")
    p.add_argument("--due", type=_utc, help="due date, e.g. '2026-12-01 23:59:00 UTC' (default: the one the course's "
                                           "gradebook.db holds, from `nbgrader db assignment add NAME --duedate=...`); "
                                           "submission times come from each student's timestamp.txt")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run student code without bubblewrap (only for hosts without user namespaces)")
    p.set_defaults(run=_grade)
    p = sub.add_parser("review", help="list the flagged submissions of a graded batch; accept, reject or set "
                                      "their grades (in its nbgrader gradebook)")
    p.add_argument("assignment")
    p.add_argument("student", nargs="?", help="the student to review (omit to list)")
    p.add_argument("--out", type=Path, help="the graded batch (default: graded/ASSIGNMENT)")
    p.add_argument("--course", type=Path, default=Path("."),
                   help="course directory, for its nbgrader_config.py (late penalties; default: .)")
    p.add_argument("--accept", action="store_true", help="the tests' automatic points stand")
    p.add_argument("--reject", action="store_true", help="0 points for every cell")
    p.add_argument("--cell", type=_points, action="append", default=[], metavar="GRADE_ID=POINTS",
                   help="points for one cell (repeatable); the cells not named keep their automatic points")
    p.add_argument("--refresh", action="store_true",
                   help="rewrite grades.csv, the report and the feedback from the gradebook (after formgrader)")
    p.set_defaults(run=_review)
    p = sub.add_parser("export", help="the gradebook's grades for an LMS (canvas, moodle, gradescope), or the "
                                      "feedback pages as zips (feedback-zip, moodle-feedback)")
    p.add_argument("assignment")
    p.add_argument("format", help="canvas | moodle | gradescope | feedback-zip | moodle-feedback")
    p.add_argument("--out", type=Path, help="the graded batch (default: graded/ASSIGNMENT)")
    p.add_argument("--to", type=Path, help="where to write (default: OUT/export/canvas.csv, moodle.csv, gradescope/, "
                                           "feedback/ or moodle-feedback.zip)")
    p.add_argument("--mapping", type=Path, help="canvas, moodle: CSV mapping each student id to the LMS's identity "
                                                "columns (Canvas's own gradebook export will do)")
    p.add_argument("--key", default="student", help="the mapping's column holding the student ids (default: student)")
    p.add_argument("--title", help="canvas, moodle: the assignment's name in the LMS (default: ASSIGNMENT)")
    p.add_argument("--canvas-id", help="canvas: the assignment's Canvas id (the number in its URL); the column is "
                                       "then 'TITLE (ID)', which Canvas matches")
    p.add_argument("--points-possible", action="store_true",
                   help="canvas: add Canvas's 'Points Possible' row (Canvas sets the assignment's points from it)")
    p.add_argument("--allow-unmatched", action="store_true",
                   help="export the students that match and warn about the rest (graded students missing from the "
                        "mapping, mapping rows without a grade, students not graded), instead of failing")
    p.set_defaults(run=_export)
    args = parser.parse_args(argv)
    if getattr(args, "jobs", 1) < 1:
        parser.error("--jobs must be at least 1")
    return args.run(args)
