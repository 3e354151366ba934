"""``cvcourse release``: regenerate the student notebooks (``notebooks/``) from ``solutions/``.

One in-process nbgrader ``generate_assignment`` per assignment (nbgrader's ``NbGraderAPI``), with
the course's own ``nbgrader_config.py``: solutions and hidden tests are stripped, outputs cleared.
"""

from __future__ import annotations

from pathlib import Path

from .gradebook import stamp

__all__ = ["ReleaseError", "assignments", "generate"]


class ReleaseError(RuntimeError):
    """An assignment that does not exist, or that nbgrader could not release."""


def assignments(course: Path) -> list[str]:
    """The assignment folders of ``course/solutions``, sorted."""
    source = course / "solutions"
    if not source.is_dir():
        raise ReleaseError(f"{course} has no solutions/ folder")
    return sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))


def generate(course: Path, names: list[str] | None = None) -> list[Path]:
    """Release ``names`` (default: every assignment) of the course at ``course``; return the
    release folders written. Raises :class:`ReleaseError` naming the assignment that failed."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    course = course.resolve()
    names = assignments(course) if names is None else names
    for name in names:
        if not (course / "solutions" / name).is_dir():
            raise ReleaseError(f"no assignment {name!r} in {course / 'solutions'}")
    config = Config()
    if (course / "nbgrader_config.py").is_file():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config())
    config.CourseDirectory.root = str(course)
    db = config.CourseDirectory.get("db_url", "sqlite:///gradebook.db")
    if db.startswith("sqlite:///") and not db.startswith("sqlite:////"):  # relative: to the course, not the cwd
        config.CourseDirectory.db_url = db = f"sqlite:///{course / db.removeprefix('sqlite:///')}"
    if db.startswith("sqlite:////"):
        stamp(Path(db.removeprefix("sqlite:///")))
    api = NbGraderAPI(config=config)
    release = config.CourseDirectory.get("release_directory", "release")
    written = []
    for name in names:
        result = api.generate_assignment(name, force=True)
        if not result["success"]:
            raise ReleaseError(f"nbgrader could not release {name!r}:\n{result.get('log', '')}{result.get('error', '')}")
        written.append(course / release / name)
    return written
