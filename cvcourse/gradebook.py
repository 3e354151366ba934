"""Creating an nbgrader gradebook without nbgrader's ``alembic heads`` subprocess.

When nbgrader opens a gradebook file that has no tables yet, it asks alembic for the head revision
of its own migrations by starting ``alembic heads`` in a subprocess (about 4 s of CPU), then records
it in an ``alembic_version`` table. :func:`stamp` does the same in-process (alembic's
``ScriptDirectory`` over nbgrader's migrations, 0.1 s), so every gradebook ``cvcourse`` creates
is the one nbgrader would have created.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

__all__ = ["head_revision", "stamp"]


def head_revision() -> str:
    """The head revision of nbgrader's gradebook migrations (what ``alembic heads`` prints)."""
    from alembic.script import ScriptDirectory

    package = Path(importlib.util.find_spec("nbgrader").submodule_search_locations[0])
    heads = ScriptDirectory(str(package / "alembic")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"nbgrader's migrations have {len(heads)} heads ({heads}); expected one")
    return heads[0]


def stamp(path: Path) -> None:
    """Give a gradebook file that does not exist yet nbgrader's ``alembic_version`` table (nbgrader
    then creates the other tables itself). An existing file is left alone."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:  # the statements nbgrader.api.Gradebook runs for a new file
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);")
        db.execute("INSERT INTO alembic_version (version_num) VALUES (?);", (head_revision(),))
