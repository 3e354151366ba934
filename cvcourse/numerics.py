"""The CPU code paths the course notebooks are stored under, and the other one they are checked under.

A stored notebook output must not depend on the CPU that made it. The book gets there by
computing its CPU-scale experiments in float64 (``cvlib.device.experiment_dtype``): the last-bit
differences between CPU code paths (AVX2 or AVX-512 kernels, MKL or OpenBLAS, oneDNN, NEON on
ARM, the number of threads) then stay near 1e-15 instead of growing into the printed digits, as
they do in float32. This module makes the tests *prove* that, on whatever machine they run:

* ``STORE``: ``scripts/execute_notebooks.py`` (and ``bench/``) run the notebooks on the
  machine's own fastest code: the pins below are removed, so torch, MKL and oneDNN pick AVX-512,
  AVX2 or NEON as the CPU offers.
* ``CHECK``: nbval (``python -m pytest``, whichever notebooks it is given) re-runs every notebook
  in a kernel pinned to the slowest, most different x86-64 code: ATen's scalar ``default``
  kernels, MKL's ``COMPATIBLE`` branch (SSE2; it applies on AMD CPUs too, unlike the ISA-named
  branches) and oneDNN capped at SSE4.1. An Intel machine thereby sees what an AMD or ARM machine
  would; on ARM the MKL and oneDNN variables have no effect and ATen's ``default`` still differs
  from NEON.

Both pin the notebooks to the CPU device (``CVLIB_DEVICE=cpu``) and unset ``CVLIB_SCALE``, so
``experiment_scale()`` takes its default, the CPU scale: the stored outputs are the CPU-scale run,
also on a machine with a GPU or in a shell that exported ``CVLIB_SCALE=gpu``. Both also start the
kernels with one OpenMP thread (``OMP_NUM_THREADS=1``), as the chapters set for themselves: the
tensors are tiny, and on a machine busy with other tests a second thread mostly spins waiting
(the solutions' nbval run took 20 % more CPU time without it). The printed numbers do not depend
on the thread count, for the same float64 reason.

This module is also the pytest plugin that applies ``CHECK`` (``-p cvcourse.numerics`` in
``pyproject.toml``'s ``addopts``, so every ``pytest`` invocation from the repository loads it,
``python -m pytest book/01_topk.ipynb`` included). Only the notebook kernels get ``CHECK``; the
unit tests run on the machine's own code.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import pytest

# The variables that choose a CPU code path; None means "unset" (the library decides).
PINS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
NOTEBOOK: dict[str, str | None] = {"CVLIB_DEVICE": "cpu", "CVLIB_SCALE": None, "OMP_NUM_THREADS": "1"}
STORE: dict[str, str | None] = {**NOTEBOOK, **dict.fromkeys(PINS)}
CHECK: dict[str, str | None] = {
    **NOTEBOOK,
    "ATEN_CPU_CAPABILITY": "default",  # PyTorch's own CPU kernels: no vector code
    "MKL_CBWR": "COMPATIBLE",  # MKL's SSE2 branch, honoured on Intel and AMD alike
    "ONEDNN_MAX_CPU_ISA": "SSE41",  # oneDNN (torch's CPU convolutions) at SSE4.1
}
PATHS = {"store": STORE, "check": CHECK}


def describe(env: dict[str, str | None]) -> str:
    """One line: ``A=1, B unset``."""
    return ", ".join(f"{k}={v}" if v is not None else f"{k} unset" for k, v in env.items())


@contextmanager
def environment(env: dict[str, str | None]) -> Iterator[dict[str, str | None]]:
    """Set (or, for None, unset) ``env`` in ``os.environ`` for the block; processes started in
    it, such as Jupyter kernels, inherit it. The old values are restored afterwards."""
    saved = {k: os.environ.get(k) for k in env}
    try:
        _set(env)
        yield env
    finally:
        _set(saved)


def _set(env: dict[str, str | None]) -> None:
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


# --- pytest plugin ------------------------------------------------------------------------------

def _is_notebook_cell(item: pytest.Item) -> bool:
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: no notebook items either
        return False
    return isinstance(item, IPyNbCell)


def pytest_report_header(config) -> str:
    return f"notebook kernels (cvcourse.numerics.CHECK): {describe(CHECK)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """nbval starts a notebook's kernel while setting up its first cell: start it under CHECK."""
    if _is_notebook_cell(item):
        with environment(CHECK):
            yield
    else:
        yield
