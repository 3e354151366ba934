"""Limits for a whole sandbox, not per process: one cgroup per kernel, and a bounded socket folder.

Per-process ``rlimit``s let a submission take, for example, 400 processes or four processes of
600 MiB each under a 1536 MiB limit. Here each sandboxed kernel is started inside its own cgroup,
created by :mod:`cvcourse.launch` just before it execs the sandbox, with

* ``memory``: the kernel and all its children together, page cache, ``tmpfs`` files (the scratch
  ``/tmp``, ``/dev/shm``) and shared mappings included (swap too, where the host accounts it);
* ``pids``: processes and threads together.

What this host offers is found once per batch by :func:`detect`:

* **cgroup v1** (``/sys/fs/cgroup/memory/`` and ``/sys/fs/cgroup/pids/`` writable, usually as
  root): groups are made below this process's own group in each hierarchy;
* **cgroup v2** with a writable subtree (root on a unified host, or a systemd-delegated
  ``user@.service`` subtree): groups are made below this process's own group, whose
  ``cgroup.subtree_control`` must enable ``memory`` and ``pids``;
* otherwise **none**: ``cvcourse grade`` says so at start-up and in the report, and only the
  per-process limits apply.

The socket folder (the one host folder the kernel may write) is a size-limited ``tmpfs`` when
this process may mount one (root); otherwise only the per-file size limit bounds it, and that is
said as well.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Support", "detect", "kill_and_remove", "mount_socket_dir", "sweep", "unmount_below"]

ROOT = Path("/sys/fs/cgroup")
SOCKET_DIR_BYTES = 1 << 20  # sockets and the connection file need a few KiB


@dataclass(frozen=True)
class Support:
    """What this host offers: ``kind`` ("v1", "v2" or "none"), the parent folders new groups go
    in (v1: one per controller), ``mount`` (the socket folder can be a tmpfs), and ``why`` not."""

    kind: str
    parents: tuple[Path, ...] = ()
    mount: bool = False
    why: str = ""

    def describe(self) -> str:
        if self.kind == "none":
            groups = f"no cgroup limits ({self.why}): processes, memory and disk are bounded per process only"
        else:
            groups = f"cgroup {self.kind}: memory and process count bounded per sandbox"
        sockets = ("socket folder: a 1 MiB tmpfs" if self.mount else
                   "socket folder: bounded per file only (mounting a tmpfs needs root)")
        return f"{groups}; {sockets}"

    def group_args(self, name: str, memory_bytes: int, processes: int) -> list[str]:
        """Arguments for :mod:`cvcourse.launch`: the group folders to create and their limits."""
        args = []
        for parent in self.parents:
            group = parent / name
            if self.kind == "v1" and parent.relative_to(ROOT).parts[0] == "memory":
                settings = [f"memory.limit_in_bytes={memory_bytes}"]
                if (parent / "memory.memsw.limit_in_bytes").exists():
                    settings.append(f"memory.memsw.limit_in_bytes={memory_bytes}")
            elif self.kind == "v1":
                settings = [f"pids.max={processes}"]
            else:
                settings = [f"memory.max={memory_bytes}", "memory.swap.max=0", f"pids.max={processes}"]
            args += ["--cgroup", f"{group}:{','.join(settings)}"]
        return args


def _own(controller: str) -> str | None:
    """This process's group in the hierarchy of ``controller`` ("" for v2's unified one)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (controller == "" and controllers == "") or controller in controllers.split(","):
            return path
    return None


def _writable(folder: Path) -> bool:
    """Whether a group can be made (and removed) in ``folder``: try it."""
    probe = folder / f"cvcourse-probe-{secrets.token_hex(4)}"
    try:
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


def detect() -> Support:
    """The cgroup support of this host (see the module docstring)."""
    mount = os.geteuid() == 0  # mounting a tmpfs on the host needs root
    if (ROOT / "memory").is_dir() and (ROOT / "pids").is_dir():
        parents = []
        for controller in ("memory", "pids"):
            own = _own(controller)
            folder = ROOT / controller / (own or "/").lstrip("/")
            if own is not None and _writable(folder):
                parents.append(folder)
        if len(parents) == 2:
            return Support("v1", tuple(parents), mount)
        why = "cgroup v1 memory and pids are not writable here (run as root)"
    elif (ROOT / "cgroup.controllers").is_file():
        own = _own("")
        folder = ROOT / (own or "/").lstrip("/")
        enabled = (folder / "cgroup.subtree_control").read_text().split() if (folder / "cgroup.subtree_control").exists() else []
        if own is not None and {"memory", "pids"} <= set(enabled) and _writable(folder):
            return Support("v2", (folder,), mount)
        why = (f"cgroup v2, but this process's group {own} does not delegate memory and pids to a "
               "writable subtree (start cvcourse in a delegated scope: `systemd-run --user --scope "
               "-p Delegate=yes cvcourse grade ...`, or as root)")
    else:
        why = "this host has no cgroup hierarchy"
    return Support("none", (), mount, why)


def kill_and_remove(support: Support, name: str, timeout: float = 5.0) -> None:
    """SIGKILL whatever is left in the groups called ``name`` and remove them."""
    for parent in support.parents:
        group = parent / name
        deadline = time.monotonic() + timeout
        while group.is_dir():
            try:
                pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                group.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)


def sweep(support: Support, prefix: str) -> None:
    """Remove the groups a killed batch left behind (their names start with ``prefix``)."""
    for parent in support.parents:
        for group in parent.glob(f"{prefix}*"):
            kill_and_remove(support, group.name, timeout=1.0)


def mount_socket_dir(folder: Path) -> None:
    """Make ``folder`` a 1 MiB tmpfs (root only)."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SOCKET_DIR_BYTES},mode=0700,nosuid,nodev,noexec",
                    "tmpfs", str(folder)], check=True, capture_output=True)


def unmount_below(folder: Path) -> None:
    """Unmount every mount at or below ``folder`` (sockets of a killed batch), deepest first."""
    folder = folder.resolve()
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[1]))
        if target == folder or folder in target.parents:
            mounts.append(target)
    for target in sorted(mounts, key=lambda p: len(p.parts), reverse=True):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)
