"""Choosing a device and seeding every random number generator the course uses.

Both are explicit calls: nothing in cvlib picks a device or a seed behind your back.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["pick_device", "seed_everything", "experiment_scale", "experiment_dtype"]

ENV_VAR = "CVLIB_DEVICE"
SCALE_VAR = "CVLIB_SCALE"
SCALES = ("cpu", "gpu")
# The floating-point type each scale computes in; see experiment_dtype.
SCALE_DTYPES = {"cpu": torch.float64, "gpu": torch.float32}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def pick_device(device: str | torch.device | None = None, *, verbose: bool = True) -> torch.device:
    """Return the device to compute on, and say which one it is.

    Order of precedence: the ``device`` argument, then the ``CVLIB_DEVICE`` environment
    variable, then the first available of ``cuda``, ``mps``, ``cpu``. A device that is asked
    for explicitly but is not available is an error, never a silent switch to the CPU.

    Args:
        device: e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device``.
        verbose: print one line naming the device and why it was chosen.
    """
    if device is not None:
        source = "device argument"
    elif os.environ.get(ENV_VAR):
        device, source = os.environ[ENV_VAR], f"{ENV_VAR} environment variable"
    else:
        source = None

    if source is None:
        if torch.cuda.is_available():
            chosen, why = torch.device("cuda"), "CUDA is available"
        elif _mps_available():
            chosen, why = torch.device("mps"), "Apple MPS is available"
        else:
            chosen, why = torch.device("cpu"), "no CUDA or MPS device found"
    else:
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"invalid device {device!r} from the {source}: {exc}") from None
        _require_available(chosen, source)
        why = f"requested by the {source}"

    if verbose:
        print(f"cvlib: using {chosen} ({why})")
    return chosen


def _require_available(device: torch.device, source: str) -> None:
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"{device} was requested by the {source} but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"{device} was requested by the {source} but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif device.type == "mps" and not _mps_available():
        raise RuntimeError(f"{device} was requested by the {source} but MPS is not available")
    elif device.type not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"unsupported device type {device.type!r} from the {source}")


def seed_everything(seed: int, *, deterministic: bool = True) -> torch.Generator:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU).

    With ``deterministic=True`` cuDNN is also told to pick deterministic kernels and not to
    autotune (``cudnn.benchmark`` off), so two runs on the same machine give the same numbers.
    That costs some GPU speed; pass ``deterministic=False`` for speed runs.

    Returns a ``torch.Generator`` seeded with ``seed``, for code that wants its own stream
    (e.g. a DataLoader's shuffling) rather than the global one.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    return torch.Generator().manual_seed(seed)


def experiment_scale(scale: str | None = None, *, verbose: bool = True) -> str:
    """The size at which a chapter's experiments run: ``"cpu"`` or ``"gpu"``.

    ``"cpu"`` (the default) is what the book shows and the tests check: the offline digits
    data, small models, seconds per experiment. ``"gpu"`` is the same code at the size a GPU
    makes worthwhile (CIFAR-10, wider models, more epochs); each chapter states what changes.
    Order of precedence: the ``scale`` argument, then the ``CVLIB_SCALE`` environment variable,
    then ``"cpu"``. Any other value is an error.
    """
    if scale is not None:
        source = "scale argument"
    elif os.environ.get(SCALE_VAR):
        scale, source = os.environ[SCALE_VAR], f"{SCALE_VAR} environment variable"
    else:
        scale, source = "cpu", f"default; set {SCALE_VAR}=gpu for the full-size runs"
    if scale not in SCALES:
        raise ValueError(f"experiment scale must be one of {SCALES}, got {scale!r} from the {source}")
    if verbose:
        print(f"cvlib: experiment scale {scale} ({source})")
    return scale


def experiment_dtype(scale: str, *, verbose: bool = True) -> torch.dtype:
    """The floating-point type a chapter's experiments compute in at ``scale``.

    ``"cpu"`` scale: ``torch.float64``. Every CPU sums in its own order (AVX2, AVX-512, NEON,
    MKL, OpenBLAS, oneDNN, the number of threads), and in float32 those last-bit differences
    grow over a few epochs of training into different printed numbers. In float64 they start
    about 1e-16 apart and stay far below the printed digits, so the book's numbers, which the
    tests re-check, are the same on every machine. At this size the cost is about 2x CPU time.

    ``"gpu"`` scale: ``torch.float32`` (``fit`` adds bf16 autocast on CUDA): the fast path.

    A chapter makes this visible and explicit in its first cell::

        SCALE = experiment_scale()
        DTYPE = experiment_dtype(SCALE)
        torch.set_default_dtype(DTYPE)   # new tensors and new models' weights are DTYPE
        splits = load_digits(dtype=DTYPE)

    The weights must be *drawn* in float64 (a model made before ``set_default_dtype`` and then
    ``.double()``-ed keeps its float32 initial rounding, which training amplifies).
    """
    if scale not in SCALE_DTYPES:
        raise ValueError(f"experiment scale must be one of {SCALES}, got {scale!r}")
    dtype = SCALE_DTYPES[scale]
    if verbose:
        why = ("stored outputs do not depend on the CPU" if dtype == torch.float64
               else "the fast path; fit adds bf16 autocast on CUDA")
        print(f"cvlib: computing in {str(dtype).removeprefix('torch.')} at {scale} scale ({why})")
    return dtype
