"""Watching the servers: re-adoption at start-up and the deadline/liveness loop.

`ServerWatch` is the part of `ServerManager` (labwork/notebooks/manager.py, which inherits it) that
runs in the background: `adopt()` at the control plane's start-up takes over servers a previous
control plane left running (`ServerProcess.load_state`) and marks dead ones stopped; a daemon
thread runs `check()` every `settings.deadline_check_s` to stop servers past their deadline and
record ones that died. It uses the manager's rows, locks and stop path (`_lock`, `_alive`,
`_mark_dead`, `_stop_server`, `_note`, `_answers`, `_procs`), which stay in manager.py.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from labwork.notebooks.lifecycle import push_deadline
from labwork.notebooks.rows import ACTIVE, aware, iso, projects_by_id
from labwork.notebooks.rows import now as _now
from labwork.notebooks.spawner import LocalProcess
from labwork.settings import Settings
from labwork.store.db import Store
from labwork.store.tables import ServerRow

log = logging.getLogger("labwork.notebooks")


class ServerWatch:
    """Adoption and the deadline loop of `ServerManager` (a mixin: it holds no state of its own)."""

    settings: Settings
    store: Store
    _procs: dict[int, LocalProcess]
    _stopping: threading.Event
    _thread: threading.Thread | None

    def adopt(self) -> dict[str, list[int]]:
        """At start-up: re-adopt servers that still run and answer, mark dead ones stopped."""
        out: dict[str, list[int]] = {"adopted": [], "stopped": []}
        with self.store.session() as s:
            rows = s.scalars(select(ServerRow).where(ServerRow.state.in_(ACTIVE))).all()
        for row in rows:
            proc = LocalProcess()
            proc.load_state({"pid": row.pid, "port": row.port})
            if row.pid and proc.poll() is None:  # alive, and a Jupyter server on the recorded port
                answered = False
                for _ in range(3):
                    if self._answers(row):
                        answered = True
                        break
                    time.sleep(0.5)
                with self.store.session() as s:
                    r = s.get(ServerRow, row.id)
                    r.state = "running"
                self._procs[row.id] = proc
                self._note(row.log_path, f"re-adopted by the control plane (pid {os.getpid()})"
                           + ("" if answered else "; the server did not answer yet"))
                out["adopted"].append(row.id)
                push_deadline(self.store, row.id, self.settings)
            else:
                when = None
                try:
                    when = datetime.fromtimestamp(Path(row.log_path).stat().st_mtime, UTC)
                except OSError:
                    pass
                self._mark_dead(row.id, "the server exited while the control plane was not running", when=when)
                out["stopped"].append(row.id)
        if out["adopted"] or out["stopped"]:
            log.info("servers adopted %s, marked stopped %s", out["adopted"], out["stopped"])
        return out

    def check(self) -> None:
        """One pass of the loop: stop servers past their deadline or idle timeout, record ones that died."""
        for sid, proc in list(self._procs.items()):
            proc.poll()  # reap exited children
        with self.store.session() as s:
            rows = s.scalars(select(ServerRow).where(ServerRow.state == "running")).all()
            projects = projects_by_id(s, {r.project_id for r in rows})
        now = _now()
        for row in rows:
            lock = self._lock(row.project_id, row.user_id)
            if not lock.acquire(blocking=False):
                continue  # a start/stop of this project is under way
            try:
                with self.store.session() as s:
                    fresh = s.get(ServerRow, row.id)
                    if fresh is None or fresh.state != "running":
                        continue
                    deadline = aware(fresh.deadline)
                if not self._alive(fresh):
                    self._mark_dead(fresh.id, "the server exited unexpectedly")
                elif deadline is not None and now >= deadline:
                    path = (projects.get(fresh.project_id) or {}).get("path", "")
                    self._stop_server(fresh.id, f"deadline reached ({iso(deadline)})", path)
                elif idle := self.idle.check(fresh, now):  # "idle for 1 h": the same stop path
                    self._stop_server(fresh.id, idle, (projects.get(fresh.project_id) or {}).get("path", ""))
            except Exception:
                log.exception("checking server %s", row.id)
            finally:
                lock.release()

    def start_loop(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run_loop, name="labwork-deadlines", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        interval = max(0.2, float(self.settings.deadline_check_s))
        while not self._stopping.wait(interval):
            try:
                self.check()
            except Exception:
                log.exception("deadline check failed")

    def stop_loop(self) -> None:
        """Stop the deadline loop; the servers keep running (they outlive the control plane)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
