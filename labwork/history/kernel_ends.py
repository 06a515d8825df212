"""A kernel that died ends its run with the reason: the provisioner's `POST /api/history/kernel-ended`
(labwork.kernels.end_report) closes the open runs of that kernel process as failed, with the words
of `KernelEnd.describe()` ("out of memory (limit 256 MiB)", "killed by signal 9 (SIGKILL)"), where
otherwise the reaper would say only "kernel stopped reporting" minutes later."""
from __future__ import annotations

from sqlalchemy import select

from labwork.history.records import now, to_datetime
from labwork.history.tables import RunRow
from labwork.store.db import Store


def end_kernel_runs(store: Store, kernel_id: str, reason: str, *, pid: int | None = None,
                    at: str | None = None) -> list[str]:
    """Close the running runs of `kernel_id` (of process `pid` when given: a kernel restarted
    under the same id starts a new run); the ids of the runs closed."""
    when = to_datetime(at, "at") if at else None
    closed: list[str] = []
    with store.session() as s:
        rows = s.scalars(select(RunRow).where(RunRow.kernel_id == kernel_id, RunRow.ended_at.is_(None))).all()
        for row in rows:
            if pid is not None and row.pid is not None and row.pid != pid:
                continue
            row.ended_at = when or row.last_seen or now()
            row.status = "failed"
            row.info = dict(row.info or {}) | {"end_reason": reason[:500], "_ended_by": "kernel-end"}
            closed.append(row.id)
    return closed
