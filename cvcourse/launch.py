"""``python -m cvcourse.launch [--cgroup DIR:FILE=VALUE,...]... -- COMMAND...``: start a sandboxed
kernel with nothing of the grader's but what it needs.

1. For each ``--cgroup``, the group folder is created, its limits written (``memory.limit_in_bytes``,
   ``pids.max``, ...) and this process moved into it, so that the kernel and everything it starts
   share those limits (see :mod:`cvcourse.cgroups`). A limit that cannot be set is an error (on
   the worker's log): the kernel is not started without it.
2. Standard input, output and error become ``/dev/null`` and every other inherited descriptor is
   closed: the kernel talks to the grader only through its sockets (it cannot write into the
   grading worker's log, or read what the worker has open).
3. ``COMMAND`` is exec'd (``prlimit ... bwrap ... python -m ipykernel_launcher``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _join(spec: str) -> None:
    folder, _, settings = spec.rpartition(":")
    group = Path(folder)
    group.mkdir(exist_ok=True)
    for item in filter(None, settings.split(",")):
        name, _, value = item.partition("=")
        (group / name).write_text(value)
    (group / "cgroup.procs").write_text(str(os.getpid()))


def main(argv: list[str]) -> None:
    if "--" not in argv:
        raise SystemExit("usage: python -m cvcourse.launch [--cgroup DIR:FILE=VALUE,...]... -- COMMAND...")
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    i = 0
    while i < len(options):
        if options[i] != "--cgroup" or i + 1 >= len(options):
            raise SystemExit(f"cvcourse.launch: unknown option {options[i]!r}")
        _join(options[i + 1])
        i += 2
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, 65536)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
