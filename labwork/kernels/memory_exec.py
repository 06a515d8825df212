"""`python -m labwork.kernels.memory_exec [--cgroup PROCS] [--rlimit BYTES] -- CMD...`: put this
process in a kernel's cgroup (or bound its address space) and become the kernel (exec, same pid),
so the kernel and everything it starts are under the limit from their first byte.

Only the standard library; it runs before every limited local kernel.
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    cgroup = rlimit = None
    while argv and argv[0] != "--":
        flag, value, argv = argv[0], argv[1], argv[2:]
        if flag == "--cgroup":
            cgroup = value
        elif flag == "--rlimit":
            rlimit = int(value)
        else:
            sys.exit(f"labwork.kernels.memory_exec: unknown option {flag}")
    cmd = argv[1:]
    if not cmd:
        sys.exit("labwork.kernels.memory_exec: no command after --")
    if cgroup:
        with open(cgroup, "w") as f:  # the kernel must not run outside its limit: an error stops it
            f.write(str(os.getpid()))
    if rlimit:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (rlimit, rlimit))
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
