"""The notebook check: nbval's kernels re-run the notebooks under another CPU code path than the
one that stored them (cvcourse.numerics), and the check catches a real bug (bench/regressions.py)."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from cvcourse import numerics
from helpers import REPO

sys.path.insert(0, str(REPO))
from bench import regressions  # noqa: E402

PROBE = ("import os, torch\n"
         "print(os.environ.get('ATEN_CPU_CAPABILITY'), os.environ.get('MKL_CBWR'), "
         "os.environ.get('ONEDNN_MAX_CPU_ISA'), os.environ.get('CVLIB_DEVICE'), os.environ.get('CVLIB_SCALE'), "
         "torch.backends.cpu.get_cpu_capability())")


def _notebook(path, stored: str) -> None:
    cell = nbformat.v4.new_code_cell(PROBE, execution_count=1,
                                     outputs=[nbformat.v4.new_output("stream", name="stdout", text=stored)])
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)


def _pytest(path) -> subprocess.CompletedProcess:
    """The repository's own pytest settings (pyproject.toml) on one notebook outside it."""
    return subprocess.run([sys.executable, "-m", "pytest", str(path), "-c", str(REPO / "pyproject.toml"),
                           "--rootdir", str(REPO), "-n0"], cwd=REPO, capture_output=True, text=True)


def test_nbval_kernels_run_under_the_check_path(tmp_path, monkeypatch):
    monkeypatch.setenv("CVLIB_SCALE", "gpu")  # a maintainer's shell: the notebooks still run at CPU scale
    c = numerics.CHECK
    stored = f"{c['ATEN_CPU_CAPABILITY']} {c['MKL_CBWR']} {c['ONEDNN_MAX_CPU_ISA']} cpu None DEFAULT\n"
    _notebook(tmp_path / "probe.ipynb", stored)
    proc = _pytest(tmp_path / "probe.ipynb")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "notebook kernels (cvcourse.numerics.CHECK)" in proc.stdout  # the plugin's report header


def test_a_different_stored_output_fails(tmp_path):
    _notebook(tmp_path / "probe.ipynb", "None None None cpu None AVX512\n")
    proc = _pytest(tmp_path / "probe.ipynb")
    assert proc.returncode == 1 and "FAILED" in proc.stdout


def test_store_and_check_differ_in_every_pin():
    for name in numerics.PINS:
        assert numerics.STORE[name] is None and numerics.CHECK[name] is not None
    assert {k: numerics.STORE[k] for k in numerics.NOTEBOOK} == {k: numerics.CHECK[k] for k in numerics.NOTEBOOK}


def test_environment_sets_unsets_and_restores(monkeypatch):
    import os

    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.delenv("MKL_CBWR", raising=False)
    with numerics.environment({"ATEN_CPU_CAPABILITY": None, "MKL_CBWR": "COMPATIBLE"}):
        assert "ATEN_CPU_CAPABILITY" not in os.environ and os.environ["MKL_CBWR"] == "COMPATIBLE"
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2" and "MKL_CBWR" not in os.environ


def test_a_forgotten_model_eval_fails_the_notebook_check():
    """A real bug in cvlib (evaluate() leaves BatchNorm in training mode) changes a stored output
    of chapter 01, and nbval fails on it. (The clean notebook passes: the suite checks it too.)"""
    result = regressions.run(["eval"], baseline=False, first_failure=True, log=lambda _: None)["regressions"]["eval"]
    assert result["caught"], result["summary"]
    assert all(cell.startswith("book/01_topk.ipynb::Cell ") for cell in result["failed_cells"])


def test_a_regression_that_no_longer_applies_is_refused(tmp_path):
    stale = regressions.Regression("stale", "", "train.py", "this text is not in cvlib", "", ())
    with pytest.raises(RuntimeError, match="exactly once"):
        regressions.plant(stale, tmp_path)


UNCHECKED_TAGS = {"nbval-ignore-output", "nbval-skip", "nbval-check-output-off"}
UNCHECKED_MARKERS = ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP")


def _code_cells():
    for path in sorted([*REPO.glob("book/*.ipynb"), *REPO.glob("solutions/*/*.ipynb")]):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                yield path.relative_to(REPO), i, cell


def test_at_most_a_tenth_of_the_code_cells_go_unchecked():
    cells = list(_code_cells())
    unchecked = [f"{path} cell {i}" for path, i, cell in cells
                 if UNCHECKED_TAGS & set(cell.metadata.get("tags", []))
                 or cell.source.lstrip().startswith(UNCHECKED_MARKERS)]
    assert len(unchecked) <= 0.10 * len(cells), unchecked


def test_the_sanitizer_rewrites_no_number():
    """tests/nbval_sanitize.cfg may normalise machine text (the device line), never a result."""
    import configparser
    import re

    config = configparser.ConfigParser()
    config.read(REPO / "tests" / "nbval_sanitize.cfg")
    results = ["0.26", "val_top1_err 0.03", "15.3% / 24.9%", "diverged at lr 25", "test error 78.6 %",
               "max |diff| < 1e-12: True", "[520, 1300, 1300]", "1.2e-05", "IoU 0.81"]
    for section in config.sections():
        pattern = re.compile(config[section]["regex"])
        for text in results:
            assert not pattern.search(text), (section, text)
