"""The sandbox a student's kernel runs in: bubblewrap namespaces plus resource limits.

Only the kernel (the process that runs student code) is sandboxed. nbgrader, the gradebook and
the hidden tests stay in the grading process outside; the kernel receives one cell at a time over
Unix sockets in a per-submission directory, the only host directory it can see.

What the kernel sees (:func:`kernel_argv`):

* read-only: the system (``/usr`` and the library links), the Python installation and virtual
  environment, the ``cvcourse`` package (the visible tests call :mod:`cvcourse.expect`; nothing
  in it is secret: the hidden inputs and checks live in ``solutions/``, which the kernel never
  sees), the packages named in ``Limits.packages`` (none by default: not ``cvlib``), a few
  files of ``/etc``; the packages an assignment forbids (its reference twins) are emptied;
* writable: a fresh size-limited ``tmpfs`` at ``/tmp`` (cwd ``/tmp/work``, ``HOME=/tmp/home``),
  gone when the kernel exits; the socket directory of its own submission;
* nothing else: not the course (``solutions/``, the gradebook, other submissions), no network
  (own network namespace with only a down loopback), own PID namespace, no capabilities,
  a cleared environment.

Limits (``prlimit``): CPU seconds, data-segment size (memory), file size, open files, no core
dumps. Wall-clock and output limits are enforced by the grading process.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Limits", "SandboxUnavailable", "check_bwrap", "kernel_argv"]

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission.

    cell_timeout: seconds one cell may run before it is interrupted (nbclient's timeout).
    wall: seconds the whole submission may take (kernel start to feedback) before it is killed.
    cpu: CPU seconds of the kernel process (SIGKILL when spent).
    memory_mb: data-segment limit of the kernel (RLIMIT_DATA: heap and anonymous mappings).
    output_kb: total text/image output kept per notebook; beyond it outputs are dropped and the
        submission is flagged.
    scratch_mb: size of the writable scratch tmpfs; file_mb: largest file the kernel may write.
    processes: processes and threads of the whole sandbox (a cgroup's ``pids.max``, where the host
        offers cgroups; see :mod:`cvcourse.cgroups`). With cgroups, ``memory_mb`` also bounds the
        whole sandbox (all its processes, tmpfs files and shared mappings together).
    """

    cell_timeout: int = 120
    wall: int = 900
    cpu: int = 600
    memory_mb: int = 4096
    output_kb: int = 1024
    scratch_mb: int = 256
    file_mb: int = 64
    processes: int = 256
    packages: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("cell_timeout", "wall", "cpu", "memory_mb", "output_kb", "scratch_mb", "file_mb", "processes"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here."""


def check_bwrap() -> str:
    """Path of a working ``bwrap``; raise :class:`SandboxUnavailable` saying why otherwise."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (`bwrap`) is not installed: `sudo apt-get install bubblewrap`")
    probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "--", "true"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        raise SandboxUnavailable(f"bubblewrap cannot create a sandbox here: {probe.stderr.strip()}")
    return bwrap


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    # Only what the dynamic loader and Python need from /etc: no passwd/shadow, no host config.
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "fonts"):
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _python_roots() -> set[Path]:
    """The Python installation and virtual environment, bound read-only into the sandbox."""
    return {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.prefix)}


def _python_binds(packages) -> list[str]:
    roots = _python_roots()
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SandboxUnavailable(f"package {name!r} (to be visible in the sandbox) is not importable")
        roots.update(Path(p) for p in spec.submodule_search_locations)
    args = []
    for root in sorted(roots, key=lambda p: len(str(p))):
        if not str(root).startswith("/usr/"):
            args += ["--ro-bind", str(root), str(root)]
    return args


def _gpu_binds() -> list[str]:
    devices = sorted(Path("/dev").glob("nvidia*")) + sorted(Path("/dev").glob("dri"))
    if not devices:
        raise SandboxUnavailable("--gpu was given but this host has no /dev/nvidia* devices")
    args = []
    for dev in devices:
        args += ["--dev-bind", str(dev), str(dev)]
    args += ["--ro-bind", "/sys", "/sys"]
    if Path("/proc/driver/nvidia").exists():
        args += ["--ro-bind", "/proc/driver/nvidia", "/proc/driver/nvidia"]
    # The driver's libraries may live outside /usr, found through LD_LIBRARY_PATH.
    for folder in _gpu_env().get("LD_LIBRARY_PATH", "").split(":"):
        if folder and Path(folder).is_dir() and not folder.startswith("/usr/"):
            args += ["--ro-bind", folder, folder]
    return args


GPU_ENV = ("LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES")


def _gpu_env() -> dict:
    """The host variables a CUDA program needs to find the driver and its devices."""
    return {key: os.environ[key] for key in GPU_ENV if os.environ.get(key)}


def _hidden_binds(modules) -> list[str]:
    """Mounts that empty the installed packages ``modules`` (top-level names) in the sandbox; a
    package outside the mounted Python installation (an editable ``cvlib``) is not there anyway."""
    args, mounted = [], _python_roots()
    for name in sorted(set(modules)):
        spec = importlib.util.find_spec(name) if "." not in name else None
        if spec is None:
            continue
        for location in spec.submodule_search_locations or [spec.origin]:
            if not location or not any(Path(location).is_relative_to(root) for root in mounted):
                continue
            if Path(location).is_dir():
                args += ["--tmpfs", location, "--remount-ro", location]
            elif Path(location).is_file():
                args += ["--ro-bind", "/dev/null", location]
    return args


def kernel_argv(socket_dir: Path, limits: Limits, *, gpu: bool = False, unsafe: bool = False,
                hide: tuple[str, ...] = (), cgroup: list[str] = ()) -> list[str]:
    """The kernelspec ``argv`` that starts an IPython kernel for one submission.

    ``socket_dir`` (``WORK/ipc``) holds the connection file and the kernel's Unix sockets, named
    relative to ``WORK`` (``ipc/kernel-N``); it is the only host directory bound into the sandbox,
    at its own path (for the connection file) and at ``/tmp/work/ipc`` (the kernel's cwd is
    ``/tmp/work``). ``hide``: installed packages (top-level names, e.g. the reference twins an
    assignment forbids) that the sandbox shows as empty folders. With ``unsafe=True`` the kernel
    runs without bubblewrap (limits still apply, nothing is hidden), for hosts without user
    namespaces; the caller must say so loudly. Either way the kernel starts through
    :mod:`cvcourse.launch`, which puts it in the cgroups ``cgroup`` names (its ``--cgroup``
    arguments) and gives it no descriptor of the grader's.
    """
    launch = [sys.executable, "-m", "cvcourse.launch", *cgroup, "--"]
    rlimits = ["prlimit", f"--cpu={limits.cpu}", f"--data={limits.memory_mb * MiB}",
               f"--fsize={limits.file_mb * MiB}", "--nofile=1024", "--core=0", "--"]
    python = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    if unsafe:  # the kernel's sockets are named relative to socket_dir's parent (see grade.py)
        return launch + rlimits + ["env", f"--chdir={socket_dir.parent}"] + python
    home = "/tmp/home"
    env = {"HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{home}/.config/matplotlib", "XDG_CACHE_HOME": f"{home}/.cache",
           "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
           # No /etc/passwd in the sandbox: getpass.getuser() (torch's compile caches, triton)
           # finds the user here instead of failing.
           "USER": "student", "LOGNAME": "student", **limits.env}
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    if gpu:
        env.update(_gpu_env())
    argv = [check_bwrap(), "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--clearenv", "--proc", "/proc", "--dev", "/dev",
            "--size", str(limits.scratch_mb * MiB), "--tmpfs", "/tmp", "--dir", home, "--dir", "/tmp/work",
            "--size", str(64 * MiB), "--tmpfs", "/dev/shm",
            *_system_binds(), *_python_binds(("cvcourse", *limits.packages)), *_hidden_binds(hide), *(_gpu_binds() if gpu else []),
            "--bind", str(socket_dir), str(socket_dir), "--bind", str(socket_dir), "/tmp/work/ipc",
            "--remount-ro", "/", "--chdir", "/tmp/work"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return launch + rlimits + argv + ["--"] + python
