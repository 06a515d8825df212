"""A Livy session and its statements: their state machines, one driver and one worker each.

A session owns one `Driver` and one worker task that runs its statements in order; no sleeps on
the hot path (a statement is one awaited message). What a session needs from the gateway that
holds it (a driver, saving its metadata, telling run history) is the small `SessionHost`
contract, so this module does not know the `Gateway` class.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from labwork.gateway.driver import Driver, DriverDied
from labwork.gateway.logs import livy_log
from labwork.gateway.protocol import FINISHED_STATES, CreateRequest, bad, parse_duration

log = logging.getLogger("labwork.gateway")


def now_ms() -> int:
    return int(time.time() * 1000)


class SessionHost(Protocol):
    """What a session asks of the gateway that holds it."""

    async def launch_driver(self, req: CreateRequest | None, kind: str, label: str,
                            on_created: Callable[[Driver], None] | None = None) -> Driver: ...

    def save_session(self, s: "Session") -> None: ...

    def statement_finished(self, s: "Session", st: "Statement") -> None: ...

    def session_ended(self, s: "Session") -> None: ...


# Outputs larger than this are not written to a session's metadata file (which is rewritten after
# every statement); a recovered session shows a notice for them instead.
PERSISTED_OUTPUT_MAX = 64 * 1024



class Statement:
    __slots__ = ("id", "code", "kind", "state", "output", "progress", "started", "completed",
                 "done", "cancel_task", "_meta")

    def __init__(self, sid: int, code: str, kind: str) -> None:
        self.id, self.code, self.kind = sid, code, kind
        self.state = "waiting"
        self.output: dict | None = None
        self.progress = 0.0
        self.started = 0
        self.completed = 0
        self.done = asyncio.Event()
        self.cancel_task: asyncio.Task | None = None
        self._meta: dict | None = None

    def to_meta(self) -> dict:
        """What the session's metadata file keeps: an output above PERSISTED_OUTPUT_MAX is
        replaced by a notice (computed once, when the statement has finished)."""
        if self._meta is not None:
            return self._meta
        meta = dict(self.to_json(), kind=self.kind)
        if self.output is not None:
            size = len(json.dumps(self.output, ensure_ascii=False, default=str).encode("utf-8"))
            if size > PERSISTED_OUTPUT_MAX:
                meta["output"] = _error_output(
                    self.id, "OutputNotKept",
                    f"this statement's output ({size} bytes) is larger than the "
                    f"{PERSISTED_OUTPUT_MAX} bytes a gateway keeps across a restart")
        if self.done.is_set():
            self._meta = meta
        return meta

    def to_json(self) -> dict:
        return {"id": self.id, "code": self.code, "state": self.state, "output": self.output,
                "progress": self.progress, "started": self.started, "completed": self.completed}

    def finish(self, state: str, output: dict | None) -> None:
        self.state, self.output = state, output
        if state == "available":
            self.progress = 1.0
        self.completed = now_ms()
        if not self.started:
            self.started = self.completed
        self.done.set()

    @classmethod
    def from_json(cls, data: dict) -> "Statement":
        st = cls(int(data["id"]), data.get("code", ""), data.get("kind", "pyspark"))
        st.state = data.get("state", "available")
        st.output = data.get("output")
        st.progress = float(data.get("progress") or 0.0)
        st.started, st.completed = int(data.get("started") or 0), int(data.get("completed") or 0)
        if st.state in ("waiting", "running", "cancelling"):
            st.state = "available"
            st.output = _error_output(st.id, "GatewayRestarted",
                                      "the gateway restarted while this statement ran; "
                                      "its result is lost")
            st.completed = st.completed or now_ms()
        st.done.set()
        return st


def _error_output(sid: int, ename: str, evalue: str) -> dict:
    return {"status": "error", "execution_count": sid, "ename": ename, "evalue": evalue,
            "traceback": [f"{ename}: {evalue}\n"]}



class Session:
    def __init__(self, gw: SessionHost, sid: int, req: CreateRequest, owner: str | None) -> None:
        self.gw = gw
        self.id = sid
        self.req = req
        self.name = req.name
        self.kind = req.kind
        self.owner = owner
        self.proxy_user = req.proxyUser
        self.state = "not_started"
        self.created = time.time()
        self.last_heartbeat = time.monotonic()
        self.last_activity = time.monotonic()
        self.finished_at: float | None = None
        self.ttl_s = parse_duration(req.ttl, "ttl")
        self.idle_s = parse_duration(req.idleTimeout, "idleTimeout")
        self.statements: list[Statement] = []
        self.queue: deque[Statement] = deque()
        self.wakeup = asyncio.Event()
        self.driver: Driver | None = None
        self.app_id: str | None = None
        self.spark_ui: str | None = None
        self.error: str | None = None
        self.tasks: list[asyncio.Task] = []
        self.dirty = True
        self.deleting = False
        self.current: Statement | None = None

    # -- JSON ------------------------------------------------------------------------------------
    def to_json(self, *, log_lines: int = 10) -> dict:
        r = self.req
        lines = self.log_tail(log_lines) if log_lines else []
        return {
            "id": self.id, "name": self.name, "appId": self.app_id, "owner": self.owner,
            "proxyUser": self.proxy_user, "state": self.state, "kind": self.kind,
            "appInfo": {"driverLogUrl": None, "sparkUiUrl": self.ui_url(),
                        "executorLogUrls": None},
            "log": lines, "ttl": r.ttl, "idleTimeout": r.idleTimeout,
            # Livy's counts are ints, 0 where unset; its sizes are null where unset
            "driverMemory": r.driverMemory, "driverCores": r.driverCores or 0,
            "executorMemory": r.executorMemory, "executorCores": r.executorCores or 0,
            "conf": dict(r.conf), "archives": list(r.archives), "files": list(r.files),
            "heartbeatTimeoutInSecond": r.heartbeatTimeoutInSecond, "jars": list(r.jars),
            "numExecutors": r.numExecutors or 0, "pyFiles": list(r.pyFiles), "queue": r.queue,
        }

    @property
    def ui_key(self) -> str | None:
        """The name its Spark UI is proxied under (its driver's folder, the spark.ui.proxyBase the
        driver started with), when the control plane proxies this gateway's UIs."""
        if self.gw.config.ui_proxy_root and self.driver is not None:
            return self.driver.dir.name
        return None

    def ui_url(self) -> str | None:
        """The Spark UI's address for clients: /spark/<key>/ on the control plane's origin (what
        a browser that reaches only that port can open), else the driver's own."""
        key = self.ui_key
        if key and self.spark_ui:
            return f"{self.gw.config.ui_proxy_root}/{key}/"
        return self.spark_ui

    def log_tail(self, n: int) -> list[str]:
        lines: list[str] = []
        if self.driver is not None:
            lines = livy_log(self.driver.out_path, self.driver.err_path, n)
        if self.error:
            lines = (lines + [f"labwork gateway: {self.error}"])[-n:]
        return lines

    def all_log(self) -> list[str]:
        drv = self.driver
        lines = livy_log(drv.out_path, drv.err_path) if drv is not None else []
        if self.error:
            lines.append(f"labwork gateway: {self.error}")
        return lines

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def touch(self) -> None:
        self.last_heartbeat = time.monotonic()

    # -- persistence -----------------------------------------------------------------------------
    def to_meta(self) -> dict:
        return {"id": self.id, "kind": self.kind, "owner": self.owner, "created": self.created,
                "request": self.req.__dict__, "app_id": self.app_id, "spark_ui": self.spark_ui,
                "driver_dir": str(self.driver.dir) if self.driver else None,
                "statements": [s.to_meta() for s in self.statements]}

    # -- lifecycle -------------------------------------------------------------------------------
    def set_state(self, state: str) -> None:
        if self.state != state:
            self.state = state
            self.dirty = True
            if state in FINISHED_STATES and self.finished_at is None:
                self.finished_at = time.monotonic()
                self.gw.session_ended(self)

    async def start(self, warm: Driver | None = None) -> None:
        self.set_state("starting")
        try:
            if warm is not None:
                self.driver = warm
            else:
                # the driver is the session's from its first moment, so that a delete while it
                # starts, or after it failed to, stops it and removes its folder
                self.driver = await self.gw.launch_driver(
                    self.req, self.kind, f"session-{self.id}",
                    on_created=lambda d: setattr(self, "driver", d))
            info = self.driver.info
            self.app_id, self.spark_ui = info.get("appId"), info.get("sparkUiUrl")
            self.driver.save_meta()
            self.gw.save_session(self)
        except DriverDied as exc:
            self.error = f"the session's driver did not start: {exc}"
            self.set_state("dead")
            self._fail_pending(self.error)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - boot errors, time-outs
            log.warning("session %s failed to start: %s", self.id, exc)
            self.error = f"the session's driver did not start: {exc}"
            self.set_state("dead")  # as Livy ends a session whose spark-submit failed
            self._fail_pending(self.error)
            if self.driver is not None:
                await self.driver.stop()
            return
        if self.deleting:
            return
        self.last_activity = time.monotonic()
        self.set_state("busy" if self.queue else "idle")
        self.tasks.append(asyncio.ensure_future(self._watch_death()))
        self.wakeup.set()

    async def recover(self, driver: Driver) -> None:
        self.driver = driver
        self.set_state("recovering")
        try:
            info = await driver.ping(timeout=60)
            if not info.get("ok"):
                raise RuntimeError("the driver has no SparkSession")
            await driver.side("adopt", pid=os.getpid())
            self.app_id = driver.info.get("appId") or self.app_id
            self.spark_ui = driver.info.get("sparkUiUrl") or self.spark_ui
        except Exception as exc:  # noqa: BLE001
            self.error = f"could not recover the session's driver: {exc}"
            self.set_state("dead")
            await driver.stop()
            return
        self.last_activity = time.monotonic()
        self.touch()
        self.set_state("busy" if self.queue else "idle")
        self.tasks.append(asyncio.ensure_future(self._watch_death()))
        self.wakeup.set()

    async def _watch_death(self) -> None:
        assert self.driver is not None
        await self.driver.dead.wait()
        if self.deleting:
            return
        self.error = self.driver.death_reason()
        log.warning("session %s: %s", self.id, self.error)
        self.set_state("dead")
        self._fail_pending(self.error)

    def _fail_pending(self, reason: str) -> None:
        for st in self.statements:
            if st.state in ("waiting", "running", "cancelling"):
                if st.state == "cancelling":
                    st.finish("cancelled", None)
                else:
                    st.finish("available", _error_output(st.id, "SessionDead",
                                                         f"the session is dead: {reason}"))
                self.gw.statement_finished(self, st)
        self.queue.clear()
        self.wakeup.set()

    # -- statements ------------------------------------------------------------------------------
    def submit(self, code: str, kind: str) -> Statement:
        if self.finished or self.deleting:
            raise bad(f"Session '{self.id}' is {self.state}; it cannot run statements")
        st = Statement(len(self.statements), code, kind)
        self.statements.append(st)
        self.queue.append(st)
        self.last_activity = time.monotonic()
        if self.state == "idle":
            self.set_state("busy")
        self.wakeup.set()
        return st

    async def worker(self) -> None:
        """Runs this session's statements one at a time, in order."""
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.queue and self.state in ("idle", "busy"):
                st = self.queue.popleft()
                if st.state != "waiting":
                    continue
                await self._run(st)
            if self.state in ("idle", "busy") and not self.queue:
                self.set_state("idle")
            if self.finished or self.deleting:
                return

    async def _run(self, st: Statement) -> None:
        assert self.driver is not None
        st.state = "running"
        st.started = now_ms()
        self.set_state("busy")
        self.current = st
        try:
            result = await self.driver.run(st.id, st.kind, st.code)
        except DriverDied as exc:
            self.current = None
            self.error = str(exc)
            self.set_state("dead")
            self._fail_pending(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a broken reply must not wedge the session
            result = {"status": "error", "execution_count": st.id, "ename": type(exc).__name__,
                      "evalue": str(exc), "traceback": []}
        self.current = None
        self.last_activity = time.monotonic()
        if not self.queue:
            self.set_state("idle")  # no later than the statement becomes available
        status = result.get("status")
        if st.state == "cancelling" and status != "ok":
            st.finish("cancelled", None)
        elif status == "cancelled":
            st.finish("cancelled", None)
        else:
            st.finish("available", result)
        self.dirty = True
        self.gw.statement_finished(self, st)

    async def refresh_progress(self, st: Statement) -> None:
        if st.state != "running" or self.driver is None:
            return
        res = await self.driver.side("progress", timeout=1.0, group=str(st.id))
        p = res.get("progress")
        if isinstance(p, (int, float)) and st.state == "running":
            st.progress = max(st.progress, min(float(p), 0.99))

    def cancel(self, st: Statement) -> None:
        if st.state == "waiting":
            st.finish("cancelled", None)
            try:
                self.queue.remove(st)
            except ValueError:
                pass
            if not self.queue and self.current is None and self.state == "busy":
                self.set_state("idle")
            self.gw.statement_finished(self, st)
        elif st.state == "running":
            st.state = "cancelling"
            st.cancel_task = asyncio.ensure_future(self._cancel_running(st))

    async def _cancel_running(self, st: Statement) -> None:
        """Cancel the statement's Spark jobs and interrupt its Python code until it ends."""
        drv = self.driver
        if drv is None:
            return
        drv.interrupt()
        await drv.side("cancel", timeout=2.0, group=str(st.id))
        for _ in range(30):
            try:
                await asyncio.wait_for(st.done.wait(), 1.0)
                return
            except asyncio.TimeoutError:
                if drv.dead.is_set() or st.state != "cancelling":
                    return
                drv.interrupt()

    async def stop(self) -> None:
        self.deleting = True
        me = asyncio.current_task()
        tasks = [t for t in self.tasks if t is not me]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for st in self.statements:
            if st.cancel_task is not None:
                st.cancel_task.cancel()
        if self.driver is not None:
            await self.driver.stop()
        if not self.finished:
            self.set_state("killed")
        self._fail_pending("the session was deleted")

