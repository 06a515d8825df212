"""Why the server's kernels ended, for `status` (the dashboard's running kernels, `labwork
notebook status`): the ends its provisioners recorded in the file next to the server's log
(labwork.kernels.ends, set as LABWORK_KERNEL_ENDS by the manager)."""
from __future__ import annotations

from typing import Any

from labwork.kernels.ends import read_ends
from labwork.notebooks.models import KernelInfo
from labwork.notebooks.rows import kernel_ends_file  # noqa: F401 - the manager's way to it

RECENT = 10


def kernels_with_ends(kernels: list[KernelInfo], log_path: str | None) -> list[KernelInfo]:
    """The kernels, each with its last end (a kernel restarted after dying keeps its id)."""
    last = {e.kernel_id: e for e in read_ends(kernel_ends_file(log_path))} if log_path else {}
    return [k.model_copy(update={"end": last[k.id].to_dict(), "end_reason": last[k.id].describe()})
            if k.id in last else k for k in kernels]


def recent_ends(log_path: str | None) -> list[dict[str, Any]]:
    """The server's last `RECENT` kernel ends, newest first (kernels gone from the list too)."""
    ends = read_ends(kernel_ends_file(log_path)) if log_path else []
    return [e.to_dict() for e in reversed(ends[-RECENT:])]
