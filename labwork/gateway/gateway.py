"""The gateway: its sessions and batches, their ids and lifetimes, one asyncio loop.

Everything runs on one loop. A housekeeping task (once a second) enforces heartbeats, idle
timeouts, ttl and the retention of finished sessions and batches, and saves what changed under
`state_dir` so that a restarted gateway can take its running drivers back. The pieces live beside
it: `sessions` (sessions and statements), `batches`, `pool` (starting drivers, the warm pool),
`persistence` (the state folder), `spark_conf` (the drivers' properties and environment).
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from labwork.gateway.batches import Batch
from labwork.gateway.driver import Driver
from labwork.gateway.persistence import StateDir
from labwork.gateway.pool import WarmPool, launch_driver
from labwork.gateway.protocol import CreateRequest, LivyError, bad, parse_duration
from labwork.gateway.sessions import Session, Statement
from labwork.gateway.spark_conf import DriverConfig
from labwork.inputs import parse_id
from labwork.settings import GatewaySettings
from labwork.spark_properties import PROJECT_TAG

log = logging.getLogger("labwork.gateway")


class Gateway:
    """Sessions and batches of one gateway, kept under `state_dir`."""

    def __init__(self, settings: GatewaySettings, state_dir: Path,
                 on_statement: Callable[[dict, dict], None] | None = None,
                 on_session_end: Callable[[dict], None] | None = None) -> None:
        self.settings = settings
        self.state_dir = Path(state_dir)
        self.on_statement = on_statement
        # called once when a session reaches a finished state (deleted, dead, failed to start)
        self.on_session_end = on_session_end
        self.sessions: dict[int, Session] = {}
        self.batches: dict[int, Batch] = {}
        self.config = DriverConfig(settings, self.state_dir)
        self.store = StateDir(self.state_dir)
        self.pool = WarmPool(settings.warm_pool, self.launch_driver, lambda: self.started)
        self.started = False
        self._start_lock: asyncio.Lock | None = None
        self._housekeeper: asyncio.Task | None = None
        self._callbacks = ThreadPoolExecutor(max_workers=2, thread_name_prefix="livy-on-statement")
        self.idle_timeout_s = parse_duration(settings.idle_timeout, "gateway.idle_timeout") or 0
        self.retain_s = parse_duration(settings.retain_finished, "gateway.retain_finished") or 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.orphan_grace_s = max(self.idle_timeout_s, 600.0)

    # -- persistence ---------------------------------------------------------------------------
    def session_meta_path(self, sid: int) -> Path:
        return self.store.session_meta_path(sid)

    def save_session(self, s: Session) -> None:
        self.store.save_session(s.id, s.to_meta())
        s.dirty = False

    # -- start / stop ----------------------------------------------------------------------------
    async def ensure_started(self) -> None:
        if self.started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self.started:
                await self.start()

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        self.loop = asyncio.get_running_loop()
        self.store.open()
        await self._recover()
        self._housekeeper = asyncio.ensure_future(self._housekeeping())
        self.pool.fill()

    async def _recover(self) -> None:
        for saved in self.store.saved_sessions():
            sid, meta, driver = saved.id, saved.meta, saved.driver
            req = CreateRequest(**meta.get("request", {}))
            s = Session(self, sid, req, meta.get("owner"))
            s.created = meta.get("created", s.created)
            s.app_id, s.spark_ui = meta.get("app_id"), meta.get("spark_ui")
            s.statements = [Statement.from_json(d) for d in meta.get("statements", [])]
            self.sessions[sid] = s
            s.tasks.append(asyncio.ensure_future(s.worker()))
            s.tasks.append(asyncio.ensure_future(s.recover(driver)))
            log.info("session %s: recovering its running driver (pid %s)", sid, driver.pid)

    async def stop(self, *, kill_drivers: bool = True) -> None:
        """Stop housekeeping; end every driver (or leave them running for a later recovery)."""
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            self._housekeeper = None
        for s in list(self.sessions.values()):
            if s.dirty and s.driver is not None and not s.finished:
                try:
                    self.save_session(s)
                except OSError:
                    pass
        if kill_drivers:
            await asyncio.gather(*(self._drop_session(s) for s in list(self.sessions.values())),
                                 return_exceptions=True)
            await asyncio.gather(*(b.kill() for b in list(self.batches.values())),
                                 return_exceptions=True)
        else:
            for s in self.sessions.values():
                s.deleting = True
                for t in s.tasks:
                    t.cancel()
                if s.driver is not None:
                    s.driver.close_client()
        self.started = False  # warm drivers that finish starting now stop themselves
        await self.pool.stop()
        self.sessions.clear()
        self.batches.clear()
        self.started = False

    def kill_all_sync(self) -> None:
        """Last resort at interpreter exit: end every driver and batch process."""
        for s in list(self.sessions.values()):
            if s.driver is not None:
                s.driver.kill_now()
        self.pool.kill_now()
        for b in self.batches.values():
            if b.proc is not None and b.proc.poll() is None:
                try:
                    os.killpg(b.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # -- drivers ---------------------------------------------------------------------------------
    async def launch_driver(self, req: CreateRequest | None, kind: str, label: str,
                            on_created: Callable[[Driver], None] | None = None) -> Driver:
        return await launch_driver(self.config, req, kind, label, orphan_grace_s=self.orphan_grace_s,
                                   on_created=on_created)

    # -- sessions --------------------------------------------------------------------------------
    def lookup(self, key: str | int) -> Session:
        """A session by id or name (404 otherwise); looking one up counts as its heartbeat."""
        s = find(self.sessions, key)
        if s is None:
            raise LivyError(404, f"Session '{key}' not found.")
        s.touch()
        return s

    def session_by_ui_key(self, key: str) -> Session | None:
        """The live session whose Spark UI is proxied under `key` (`Session.ui_key`)."""
        return next((s for s in list(self.sessions.values())
                     if not s.finished and s.spark_ui and s.ui_key == key), None)

    def lookup_batch(self, key: str | int) -> Batch:
        b = find(self.batches, key)
        if b is None:
            raise LivyError(404, f"Batch '{key}' not found.")
        return b

    def create_session(self, req: CreateRequest, owner: str | None) -> Session:
        active = sum(1 for s in self.sessions.values() if not s.finished)
        if active >= self.settings.max_sessions:
            raise bad(f"Rejected: too many sessions ({active}; the gateway allows "
                      f"{self.settings.max_sessions})")
        if req.name is not None and any(s.name == req.name for s in self.sessions.values()):
            raise bad(f"Duplicate session name: {req.name}")
        sid = self.store.next_id("session")
        s = Session(self, sid, req, owner)
        s.set_state("starting")
        self.sessions[sid] = s
        warm = self.pool.take() if self.pool.eligible(req) else None
        s.tasks.append(asyncio.ensure_future(s.worker()))
        s.tasks.append(asyncio.ensure_future(s.start(warm)))
        return s

    async def delete_session(self, s: Session) -> None:
        """Synchronous for the client: the session is gone from the list before this returns."""
        self.sessions.pop(s.id, None)
        await self._drop_session(s)

    async def _drop_session(self, s: Session) -> None:
        self.sessions.pop(s.id, None)
        try:
            await s.stop()
        finally:
            self.store.forget_session(s.id)
            if s.driver is not None:
                shutil.rmtree(s.driver.dir, ignore_errors=True)

    def statement_finished(self, s: Session, st: Statement) -> None:
        """Tell `on_statement` (run history) that a statement finished."""
        if self.on_statement is not None:
            stmt = st.to_json()
            stmt["kind"] = st.kind
            self._notify("on_statement", self.on_statement, s.to_json(log_lines=0), stmt)

    def session_ended(self, s: Session) -> None:
        """Tell `on_session_end` (run history) that a session finished, with its state and why."""
        if self.on_session_end is not None:
            sess = s.to_json(log_lines=0)
            sess["error"] = s.error
            self._notify("on_session_end", self.on_session_end, sess)

    def _notify(self, what: str, cb: Callable[..., None], *args: dict) -> None:
        """Run a callback on the callback threads, never on the loop; its failure is only logged."""
        def call() -> None:
            try:
                cb(*args)
            except Exception:  # noqa: BLE001 - a callback must never hurt the gateway
                log.exception("%s callback failed", what)

        try:
            self._callbacks.submit(call)
        except RuntimeError:
            pass

    async def delete_project_sessions(self, project: str, user: str | None = None) -> int:
        """Delete every session whose conf tags it with `spark.labwork.project = project` (what
        labwork's Spark kernels send), only `user`'s when given (their server stopped: the other
        members' sessions stay); returns how many. Called when the project's server stops."""
        mine = [s for s in list(self.sessions.values()) if str(s.req.conf.get(PROJECT_TAG) or "") == project
                and (user is None or user in (s.owner, s.proxy_user))]
        for s in mine:
            await self.delete_session(s)
        return len(mine)

    def delete_project_sessions_sync(self, project: str, timeout: float = 60.0,
                                     user: str | None = None) -> int:
        """`delete_project_sessions` from a thread other than the gateway's loop (the server
        manager's); 0 when the gateway never started (then it has no sessions)."""
        loop = self.loop
        if loop is None or not loop.is_running() or not self.started:
            return 0
        return asyncio.run_coroutine_threadsafe(self.delete_project_sessions(project, user),
                                                loop).result(timeout)

    # -- batches ---------------------------------------------------------------------------------
    def create_batch(self, req: CreateRequest, owner: str | None) -> Batch:
        if req.name is not None and any(b.name == req.name for b in self.batches.values()):
            raise bad(f"Duplicate batch name: {req.name}")
        bid = self.store.next_id("batch")
        b = Batch(bid, req, owner, folder=self.store.batch_dir(bid), config=self.config)
        self.batches[bid] = b
        b.task = asyncio.ensure_future(b.run())
        return b

    async def delete_batch(self, b: Batch) -> None:
        self.batches.pop(b.id, None)
        await b.kill()
        shutil.rmtree(b.dir, ignore_errors=True)

    # -- housekeeping ----------------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        while True:
            try:
                await asyncio.sleep(1.0)
                await self.housekeep()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("gateway housekeeping failed")

    async def housekeep(self) -> None:
        now = time.monotonic()
        expired: list[tuple[Session, str]] = []
        for s in list(self.sessions.values()):
            if s.finished:
                if s.finished_at is not None and now - s.finished_at > self.retain_s:
                    expired.append((s, "retention"))
                continue
            hb = s.req.heartbeatTimeoutInSecond
            if hb and now - s.last_heartbeat > hb:
                expired.append((s, f"no heartbeat for {hb}s"))
                continue
            if s.ttl_s and time.time() - s.created > s.ttl_s:
                expired.append((s, f"ttl {s.req.ttl} reached"))
                continue
            idle = s.idle_s if s.idle_s is not None else self.idle_timeout_s
            if idle and s.state == "idle" and now - s.last_activity > idle:
                expired.append((s, "idle timeout"))
                continue
            if s.dirty and s.driver is not None and s.state in ("idle", "busy"):
                try:
                    await asyncio.to_thread(self.save_session, s)
                except OSError:
                    pass
        for s, why in expired:
            log.info("session %s deleted: %s", s.id, why)
            await self.delete_session(s)
        for b in list(self.batches.values()):
            if b.finished_at is not None and now - b.finished_at > self.retain_s:
                self.batches.pop(b.id, None)
                shutil.rmtree(b.dir, ignore_errors=True)
        self.pool.prune()


def find(table: dict, key: str | int):  # noqa: ANN202 - a Session or a Batch
    """By id when `key` is a number, else by name."""
    if (number := parse_id(key)) is not None:
        return table.get(number)
    return next((c for c in table.values() if c.name == str(key)), None)
