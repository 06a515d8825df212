"""Idle shutdown that counts real work (issue 13): when a server is idle, kernels busy too long,
and the kernel-culling options its Jupyter is started with.

A server is idle when no kernel is busy (or starting), and nothing happened for its idle timeout
(`ServerConfig.idle`): no cell run or kernel output, no terminal activity, no request of a client
(a browser, the REST API). Everything is read from the server's own REST API, the way Jupyter
itself counts activity: `/api/status` (`last_activity`: API requests, kernels, terminals),
`/api/kernels` (`execution_state`, `last_activity`) and `/api/terminals` (`last_activity`), with
Jupyter's `no_track_activity` flag so that watching never counts as activity. A kernel busy in a
long `time.sleep` with every browser closed is work: such a server is not idle.

`IdleWatch.check` runs in the manager's check loop (every `settings.deadline_check_s`) for each
running server. It returns the stop reason ("idle for 1 h") when the server is to stop; the
manager stops it through its one stop path. Before that, the server's labwork extension is told
(issue 13's `PUT labwork/lifecycle`): `idle` (timeout, stop_at) whenever the stop time moves, and a
`notice` of kind "idle" at each warning offset. A kernel busy longer than `idle.busy_ceiling` is
reported (server log, `status`, the dashboard, a `notice` of kind "busy"), never stopped.

Idle kernels inside a running server are culled by Jupyter itself: `culling_options` are
jupyter_server's own `MappingKernelManager.cull_*` options, from the `[idle]` settings.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from labwork import units
from labwork.notebooks.jupyter_api import JupyterApi, lifecycle, push_lifecycle
from labwork.notebooks.models import BusyKernel, IdleStatus
from labwork.notebooks.rows import aware, iso
from labwork.settings import IdleSettings
from labwork.store.tables import ServerRow

# The execution state that is work, whatever the clients. Not "starting": Jupyter keeps a kernel
# started over REST "starting" until a client first talks to it, which may be never.
WORKING = ("busy",)
BLIPS = 2  # a busy spell ends when the kernel is seen not busy this many checks in a row


def culling_options(settings: IdleSettings) -> list[str]:
    """jupyter_server's kernel culling, for the command line of a server labwork starts: idle
    kernels (never busy ones) are shut down after `cull_kernels_after`; none when it is 0."""
    after = units.parse_duration(settings.cull_kernels_after) or 0.0
    if after <= 0:
        return []
    every = units.parse_duration(settings.cull_interval) or 300.0
    return [f"--MappingKernelManager.cull_idle_timeout={max(1, math.ceil(after))}",
            f"--MappingKernelManager.cull_interval={max(1, math.ceil(every))}",
            f"--MappingKernelManager.cull_connected={settings.cull_connected}",
            "--MappingKernelManager.cull_busy=False"]


def _time(value: Any) -> datetime | None:
    try:
        return aware(datetime.fromisoformat(str(value))) if value else None
    except ValueError:
        return None


@dataclass
class _Watched:
    """What the watch remembers of one server between checks."""
    busy_since: dict[str, datetime] = field(default_factory=dict)  # kernel id -> first seen busy
    not_busy: dict[str, int] = field(default_factory=dict)  # kernel id -> checks seen not busy since
    reported: set[str] = field(default_factory=set)  # kernels reported busy past the ceiling
    warned: set[float] = field(default_factory=set)  # warning offsets already sent this idle spell
    pushed_stop_at: datetime | None = None
    pushed: bool = False  # the idle state was pushed at least once
    snapshot: IdleStatus | None = None


class IdleWatch:
    """Watches the running servers' activity; one per `ServerManager`. `note(log_path, text)`
    writes labwork's line into a server's log."""

    def __init__(self, settings: IdleSettings, note: Callable[[str, str], None], *,
                 warn_before_s: tuple[float, ...]) -> None:
        """`warn_before_s`: the deadline's warning offsets (`settings.warn_before_s`), which the
        idle stop shares."""
        self.ceiling_s = units.parse_duration(settings.busy_ceiling) or 24 * 3600.0
        self.warn_before_s = tuple(sorted((float(o) for o in warn_before_s), reverse=True))
        self._note = note
        self._servers: dict[int, _Watched] = {}
        self._guard = threading.Lock()

    def snapshot(self, server_id: int) -> dict[str, Any] | None:
        """What the last check saw of the server (`ServerStatus.idle`), None before the first one."""
        with self._guard:
            watched = self._servers.get(server_id)
            return watched.snapshot.model_dump(mode="json") if watched and watched.snapshot else None

    def forget(self, server_id: int) -> None:
        with self._guard:
            self._servers.pop(server_id, None)

    def check(self, row: ServerRow, now: datetime) -> str | None:
        """One look at a running server: the stop reason when it has been idle for its timeout,
        else None (also when it does not answer: a server is never stopped on a guess)."""
        with JupyterApi(row.url, row.token) as api:
            status = api.status()
            kernels = api.watched_kernels()
            terminals = api.terminals() if status is not None else []
        if status is None or kernels is None:
            return None
        timeout = (row.config or {}).get("idle")
        with self._guard:
            watched = self._servers.setdefault(row.id, _Watched())
        times = [_time(status.get("last_activity")), _time(status.get("started")),
                 *(_time(k.get("last_activity")) for k in kernels),
                 *(_time(t.get("last_activity")) for t in terminals)]
        last = max((t for t in times if t is not None), default=now)
        working = [k for k in kernels if k.get("execution_state") in WORKING]
        long_busy = self._busy(row, watched, kernels, working, now)
        stop_at = None if working or not timeout else last + timedelta(seconds=float(timeout))
        watched.snapshot = IdleStatus(
            timeout_s=timeout, last_activity=iso(last), idle_s=0.0 if working else max(0.0, (now - last).total_seconds()),
            stop_at=iso(stop_at), busy_kernels=len(working), long_busy=long_busy, busy_ceiling_s=self.ceiling_s,
            checked=iso(now))
        if not timeout:
            return None
        self._tell(row, watched, float(timeout), stop_at, now)
        if stop_at is not None and now >= stop_at:
            self._note(row.log_path, f"idle since {iso(last)}: no kernel busy and no cell run, terminal or "
                                     f"client activity for {units.format_seconds(float(timeout))}")
            return f"idle for {units.format_seconds(float(timeout))}"
        return None

    # ---------------------------------------------------------------------- busy kernels
    def _busy(self, row: ServerRow, watched: _Watched, kernels: list[dict[str, Any]],
              working: list[dict[str, Any]], now: datetime) -> list[BusyKernel]:
        """The kernels busy past the ceiling, each reported once per busy spell (log and notice).
        A kernel is busy at least since it was first seen busy, and since its last message (a busy
        kernel's last message came after its turn to busy). A spell ends when the kernel is gone
        or seen not busy `BLIPS` checks in a row (one odd reading does not restart the count)."""
        busy = {str(k.get("id")) for k in working}
        listed = {str(k.get("id")) for k in kernels}
        for kid in set(watched.busy_since) - busy:
            watched.not_busy[kid] = watched.not_busy.get(kid, 0) + 1
            if kid not in listed or watched.not_busy[kid] >= BLIPS:
                watched.busy_since.pop(kid, None)
                watched.not_busy.pop(kid, None)
                watched.reported.discard(kid)
        for kid in busy:
            watched.not_busy.pop(kid, None)
        out = []
        for k in working:
            kid = str(k.get("id"))
            seen = watched.busy_since.setdefault(kid, now)
            last = _time(k.get("last_activity"))
            since = min(seen, last) if last else seen
            busy_s = (now - since).total_seconds()
            if busy_s < self.ceiling_s:
                continue
            out.append(BusyKernel(id=kid, name=k.get("name"), busy_since=iso(since), busy_s=busy_s))
            if kid not in watched.reported:
                watched.reported.add(kid)
                text = (f"kernel {kid} ({k.get('name')}) has been busy for more than "
                        f"{units.format_seconds(self.ceiling_s)} (since {iso(since)}); labwork does not "
                        "stop it: interrupt or restart it if it is stuck")
                self._note(row.log_path, text)
                push_lifecycle(row, {"notice": {"kind": "busy", "text": text, "stop_at": None}})
        return out

    # ---------------------------------------------------------------------- telling the server
    def _tell(self, row: ServerRow, watched: _Watched, timeout: float, stop_at: datetime | None,
              now: datetime) -> None:
        """Push the idle state when the stop time moved (by more than a tenth of the timeout, at
        most a minute), and a notice at each warning offset the timeout is longer than."""
        old = watched.pushed_stop_at
        moved = (old is None) != (stop_at is None) or (
            old is not None and stop_at is not None
            and abs((stop_at - old).total_seconds()) > min(60.0, timeout / 10))
        if not watched.pushed or moved:
            push_lifecycle(row, {"idle": {"timeout_s": timeout, "stop_at": iso(stop_at)}})
            watched.pushed, watched.pushed_stop_at = True, stop_at
        left = None if stop_at is None else (stop_at - now).total_seconds()
        due = [o for o in self.warn_before_s if timeout > o and left is not None and left <= o]
        if watched.warned and (left is None or left > max(watched.warned)):
            watched.warned.clear()  # work again: the warning no longer holds
            self._withdraw(row)
        if due and min(due) not in watched.warned:
            watched.warned.update(due)
            text = (f"This server has been idle and stops in {units.format_seconds(min(due))} "
                    f"(idle timeout {units.format_seconds(timeout)}); run a cell or use it to keep it")
            # with the idle state, so the notice and `idle.stop_at` name the same time
            push_lifecycle(row, {"idle": {"timeout_s": timeout, "stop_at": iso(stop_at)},
                                 "notice": {"kind": "idle", "text": text, "stop_at": iso(stop_at)}})
            watched.pushed_stop_at = stop_at

    @staticmethod
    def _withdraw(row: ServerRow) -> None:
        """Clear the server's notice when it is still our idle warning (not a deadline's)."""
        state = lifecycle(row) or {}
        if (state.get("notice") or {}).get("kind") == "idle":
            push_lifecycle(row, {"notice": None})
