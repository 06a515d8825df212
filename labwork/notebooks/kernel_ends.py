"""Why the server's kernels ended, for `status` (the dashboard's running kernels, `labwork
notebook status`): the ends its provisioners recorded in the file next to the server's log
(labwork.kernels.ends, set as LABWORK_KERNEL_ENDS by the manager)."""
from __future__ import annotations

from typing import Any

from labwork.kernels.ends import read_ends
from labwork.notebooks.models import KernelInfo
from labwork.notebooks.rows import kernel_ends_file

RECENT = 10


def with_ends(kernels: list[KernelInfo], log_path: str | None) -> tuple[list[KernelInfo], list[dict[str, Any]]]:
    """The kernels, each with its last end (a kernel restarted after dying keeps its id), and the
    server's last `RECENT` ends, newest first (kernels gone from the list too)."""
    if not log_path:
        return kernels, []
    ends = read_ends(kernel_ends_file(log_path))
    last = {e.kernel_id: e for e in ends}
    out = [k.model_copy(update={"end": last[k.id].to_dict(), "end_reason": last[k.id].describe()})
           if k.id in last else k for k in kernels]
    return out, [e.to_dict() for e in reversed(ends[-RECENT:])]
