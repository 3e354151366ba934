"""Command line: ``cvcourse release``, ``cvcourse check``, ``cvcourse grade`` (``--help`` on each)."""

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
    import nbformat
    from nbclient import NotebookClient

    path = args.notebook
    if not path.is_file():
        print(f"cvcourse check: {path} does not exist", file=sys.stderr)
        return 2
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=args.timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent.resolve())}}).execute()
    failed = 0
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if meta.get("grade"):
            verdict = "passed" if not errors else f"FAILED: {errors[0].ename}: {errors[0].evalue}"
            print(f"{meta['grade_id']:>24} ({meta.get('points', 0):g} points): {verdict}")
            failed += bool(errors)
        elif errors:
            print(f"{'(a cell)':>24}: {errors[0].ename}: {errors[0].evalue}")
    print("All visible tests pass; the grader also runs hidden tests." if not failed else
          f"{failed} test cell(s) fail.")
    return 1 if failed else 0


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
    from .grade import Batch, grade
    from .hidden import AuthoringError

    try:
        limits = Limits(cell_timeout=args.cell_timeout, wall=args.wall, cpu=args.cpu, memory_mb=args.memory_mb,
                        output_kb=args.output_kb)
    except ValueError as exc:  # names the limit, e.g. "Limits.cpu must be a positive int, got 0"
        print(f"cvcourse grade: {exc} (--cell-timeout, --wall, --cpu, --memory-mb, --output-kb)", file=sys.stderr)
        return 2
    out = args.out or Path("graded") / args.assignment
    batch = Batch(course=args.course.resolve(), assignment=args.assignment, submissions=args.submissions.resolve(),
                  out=out.resolve(), limits=limits, jobs=args.jobs, gpu=args.gpu, unsafe=args.unsafe_no_sandbox,
                  force=args.force)
    try:
        report = grade(batch)
    except FileNotFoundError as exc:
        print(f"cvcourse grade: {exc}", file=sys.stderr)
        return 2
    except AuthoringError as exc:
        print(f"cvcourse grade: the hidden tests of {args.assignment} do not follow the two-halves form "
              f"(see cvcourse/hidden.py): {exc}", file=sys.stderr)
        return 2
    students = report["students"].values()
    print(f"graded {len(report['students'])} submissions ({len(report['resumed'])} resumed), "
          f"{sum(s['review'] for s in students)} flagged for review; see {out / 'report.md'}")
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
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
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
    p.add_argument("--gpu", action="store_true", help="pass the host's NVIDIA devices into the sandbox")
    p.add_argument("--force", action="store_true", help="grade again even the submissions already graded")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run student code without bubblewrap (only for hosts without user namespaces)")
    p.set_defaults(run=_grade)
    args = parser.parse_args(argv)
    if getattr(args, "jobs", 1) < 1:
        parser.error("--jobs must be at least 1")
    return args.run(args)
