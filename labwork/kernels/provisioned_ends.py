"""How a kernel in a container or on a remote host ended, as a `KernelEnd` and in its one wording.

The Docker and SSH provisioners both learn an exit status (the container's, or the ssh session's,
which is the remote kernel's: labwork.kernels.remote_watch exits with it), where a status above 128
is 128 + the signal that killed the kernel, as a shell reports it; Docker adds whether the
container ran out of memory and its limit. `provisioned_end` turns that into the `KernelEnd` of
labwork.kernels.ends, and `end_reason` words it ("container 1a2b3c4d5e6f: out of memory (limit
96 MiB)", "host vm: killed by signal 9 (SIGKILL)") with `KernelEnd.describe()`, so every surface
says an end the same way.
"""
from __future__ import annotations

from labwork.kernels.ends import KernelEnd
from labwork.units import parse_size

def memory_bytes(limit: str | int | None) -> int | None:
    """A Docker memory limit ("96m", "2g", 1073741824) in bytes; None when absent or unreadable
    (an end is reported whatever its limit looked like)."""
    if limit is None or limit == "":
        return None
    try:
        return parse_size(limit)
    except ValueError:
        return None


def provisioned_end(kernel_id: str | None, *, exit_code: int | None, where: str, run_config: str | None = None,
                    oom: bool = False, memory: str | int | None = None) -> KernelEnd:
    """The end of a kernel whose exit status is `exit_code` (128 + N: killed by signal N)."""
    sig = exit_code - 128 if exit_code is not None and 128 < exit_code < 192 else None
    return KernelEnd(kernel_id=kernel_id or "", run_config=run_config, exit_code=None if sig else exit_code,
                     signal=sig, oom=oom, memory_limit=memory_bytes(memory), where=where)


def end_reason(end: KernelEnd) -> str:
    """Where the kernel ran, and how it ended: "container 1a2b3c4d5e6f: exited with code 1"."""
    return f"{end.where}: {end.describe()}"
