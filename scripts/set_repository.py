"""Point the course at its repository: the first thing a fork changes.

    python scripts/set_repository.py https://github.com/YOU/cv-fundamentals

The repository URL is one setting, ``repository.url`` in ``_config.yml`` (the site's repository,
issue, Colab and Binder buttons); this command writes it there and copies it to the two places
that cannot read it: ``pyproject.toml``'s ``[project.urls]`` and the Colab install cell at the top
of every chapter (``pip install "cv-fundamentals @ git+URL"``). ``tests/test_site.py`` checks that
the three agree. Nothing else changes; re-run ``jupyter-book build`` afterwards.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
GITHUB = re.compile(r"^https://github\.com/[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")
CONFIG_URL = re.compile(r"^(repository:\n  url: ).*$", re.M)
INSTALL = re.compile(r'"cv-fundamentals @ git\+[^"]*"')


def set_repository(url: str, root: Path = REPO) -> list[Path]:
    """Write ``url`` everywhere the course names its repository; the files changed."""
    if not GITHUB.match(url):
        raise ValueError(f"{url!r} is not a GitHub repository URL (https://github.com/OWNER/NAME)")
    changed = []
    config = root / "_config.yml"
    text = config.read_text()
    if not CONFIG_URL.search(text):
        raise ValueError(f"{config} has no 'repository:' / '  url:' setting to change")
    config.write_text(CONFIG_URL.sub(lambda m: m.group(1) + url, text, count=1))
    changed.append(config)
    project = root / "pyproject.toml"
    text = project.read_text()
    new = re.sub(r'^Repository = ".*"$', f'Repository = "{url}"', text, count=1, flags=re.M)
    if new != text:
        project.write_text(new)
        changed.append(project)
    for path in sorted((root / "book").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if c.cell_type == "code" and INSTALL.search(c.source)]
        for cell in cells:
            cell.source = INSTALL.sub(f'"cv-fundamentals @ git+{url}"', cell.source)
        if cells:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        changed = set_repository(argv[0])
    except ValueError as exc:
        print(f"set_repository: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"updated {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
