"""Telling everyone how a kernel ended: the provisioners' (local, Docker, SSH) one call.

`report_end` appends the `KernelEnd` to the server's ends file (labwork.kernels.ends, which
JupyterLab's notice, the dashboard and `labwork notebook status` read), writes one line in the
server log and tells run history (`POST /api/history/kernel-ended`, in the background), which
ends the kernel's open run with the same words. Only ends the server did not ask for are reported
(a shutdown or restart from Jupyter is no death).
"""
from __future__ import annotations

import logging
from typing import Any

from labwork.kernels.ends import KernelEnd, record_end


def end_from_status(kernel_id: str, status: int | None, **fields: Any) -> KernelEnd:
    """A `KernelEnd` from a Popen-style status: negative = killed by that signal."""
    if status is not None and status < 0:
        return KernelEnd(kernel_id=kernel_id, signal=-status, **fields)
    return KernelEnd(kernel_id=kernel_id, exit_code=status, **fields)


def report_end(end: KernelEnd, log: logging.Logger | logging.LoggerAdapter, *, pid: int | None = None) -> None:
    """Record, log and tell run history; never raises (a kernel's end must not fail its restart)."""
    try:
        record_end(end)
        rc = f" (run configuration '{end.run_config}')" if end.run_config else ""
        log.error("labwork: kernel %s%s on %s ended: %s", end.kernel_id, rc, end.where, end.describe())
        from labwork.kernels.launch import post_to_control_plane
        post_to_control_plane("/api/history/kernel-ended", {"kernel_id": end.kernel_id, "pid": pid,
                                                           "reason": end.describe(), "at": end.at},
                              attempts=3, name="labwork-kernel-end")
    except Exception:  # noqa: BLE001 - bookkeeping never breaks the server
        log.exception("labwork: recording the end of kernel %s", end.kernel_id)
