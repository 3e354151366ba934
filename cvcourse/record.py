"""The per-student result of ``cvcourse grade``: what the worker found, then what the main process
decided. Stored as ``OUT/results/STUDENT.json`` (the same fields, JSON), read back to resume."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

__all__ = ["NotebookScore", "StudentResult"]


@dataclass
class NotebookScore:
    """One graded notebook: ``scores`` {grade_id: (points, max)}, ``failed`` {grade_id: reason},
    ``notes`` {grade_id: [what checks that are not counted found]}."""

    scores: dict[str, tuple[float, float]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def points(self) -> float:
        return sum(p for p, _ in self.scores.values())

    @property
    def maximum(self) -> float:
        return sum(m for _, m in self.scores.values())


@dataclass
class StudentResult:
    """One student's grading.

    Filled by the worker: ``notes`` (repairs, for the report), ``flags`` (reasons to review),
    ``malformed``, ``crashed``, ``timeouts`` (what went wrong, per notebook), ``notebooks``, and
    ``grader_errors``: what failed on the grader's side (a kernel that could not start, a worker
    that failed), which is never the student's fault: no grade is recorded and the next run
    grades the submission again.
    Filled by the main process: the hashes it resumes by, ``seconds``, and through
    :func:`cvcourse.results.finish` the ``status``, ``score`` (0 while flagged), ``auto_score``
    (what the tests gave), ``max_score`` and ``review``.
    """

    student: str
    notes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)
    grader_errors: list[str] = field(default_factory=list)
    notebooks: dict[str, NotebookScore] = field(default_factory=dict)
    submission_hash: str = ""
    source_hash: str = ""
    course_id: str = ""
    seconds: float = 0.0
    status: str = ""
    score: float = 0.0
    auto_score: float = 0.0
    max_score: float = 0.0
    submitted: str = ""  # the submission time from nbgrader's timestamp.txt (UTC, ISO 8601), if any
    seconds_late: float = 0.0  # after the due date, when one is set
    late_penalty: float = 0.0  # points taken off by nbgrader's LateSubmissionPlugin (score is after it)
    review: bool = False  # flagged, and not yet reviewed
    reviewed: bool = False  # graded by hand (formgrader or ``cvcourse review``): the gradebook's grade

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "StudentResult":
        data = json.loads(text)
        notebooks = {name: NotebookScore({g: (float(p), float(m)) for g, (p, m) in nb["scores"].items()},
                                         dict(nb["failed"]), dict(nb.get("notes", {})))
                     for name, nb in data.pop("notebooks", {}).items()}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(notebooks=notebooks, **known)
