"""The CPU numerics under which the notebooks' stored outputs are made and re-checked.

PyTorch (ATen), MKL and oneDNN each choose vector code for the CPU they run on (AVX2,
AVX-512, ...). The choices differ in the last bits of sums, and a few epochs of training turn
those bits into different printed numbers: a notebook stored on an AVX-512 machine fails nbval
on an AVX2 one, and the other way round. Pinning all three libraries to their AVX2 code makes
every x86-64 CPU with AVX2 compute the same thing, so `scripts/execute_notebooks.py` (which
stores outputs) and the tests (which re-check them) both apply these variables before torch
loads. Readers' own runs are not pinned and may differ in the last printed digit.
"""

from __future__ import annotations

import os

REFERENCE_NUMERICS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own CPU kernels
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility branch (matrix products)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN, behind torch's CPU convolutions
}


def apply() -> None:
    """Set the variables in this process's environment (kernels started later inherit them)."""
    os.environ.update(REFERENCE_NUMERICS)
