"""The gateway's state: sessions, statements, batches, their state machines and lifetimes.

Everything runs on one asyncio loop. A session owns one `Driver` and one worker task that runs
its statements in order; no sleeps on the hot path (a statement is one awaited message). A
housekeeping task (once a second) enforces heartbeats, idle timeouts, ttl and the retention of
finished sessions and batches, and saves what changed under `state_dir` so that a restarted
gateway can take its running drivers back.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from labwork.gateway.driver import Driver, DriverDied
from labwork.inputs import parse_id
from labwork.gateway.protocol import (FINISHED_STATES, CreateRequest, LivyError, bad,
                                      parse_duration)
from labwork.gateway.sparkmagic_kernels import PROJECT_TAG
from labwork.private import user_umask
from labwork.settings import GatewaySettings

log = logging.getLogger("labwork.gateway")

STARTUP_TIMEOUT_S = 600.0
APP_ID = re.compile(r"\b(application_\d+_\d+|app-\d{14}-\d{4,}|local-\d{10,}|spark-[0-9a-f]{32})\b")


def now_ms() -> int:
    return int(time.time() * 1000)


def tail_lines(path: Path, n: int, max_bytes: int = 64_000) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]
    return lines[-n:] if n >= 0 else lines


def all_lines(path: Path) -> list[str]:
    try:
        return path.read_bytes().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def livy_log(out_path: Path, err_path: Path, n: int | None = None) -> list[str]:
    """A driver's output as Livy shows spark-submit's: "stdout: ", its stdout lines, "\nstderr: ",
    its stderr lines; the last `n` of them (None: all)."""
    if n is None:
        return ["stdout: ", *all_lines(out_path), "\nstderr: ", *all_lines(err_path)]
    err = tail_lines(err_path, n)
    if len(err) >= n:
        return err[-n:]
    return (["stdout: ", *tail_lines(out_path, n), "\nstderr: ", *err])[-n:]


# Outputs larger than this are not written to a session's metadata file (which is rewritten after
# every statement); a recovered session shows a notice for them instead.
PERSISTED_OUTPUT_MAX = 64 * 1024


def spark_home() -> Path:
    import pyspark
    from pyspark.find_spark_home import _find_spark_home
    try:
        return Path(_find_spark_home())
    except Exception:
        return Path(pyspark.__file__).parent


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
    def __init__(self, gw: "Gateway", sid: int, req: CreateRequest, owner: str | None) -> None:
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
            "appInfo": {"driverLogUrl": None, "sparkUiUrl": self.spark_ui,
                        "executorLogUrls": None},
            "log": lines, "ttl": r.ttl, "idleTimeout": r.idleTimeout,
            # Livy's counts are ints, 0 where unset; its sizes are null where unset
            "driverMemory": r.driverMemory, "driverCores": r.driverCores or 0,
            "executorMemory": r.executorMemory, "executorCores": r.executorCores or 0,
            "conf": dict(r.conf), "archives": list(r.archives), "files": list(r.files),
            "heartbeatTimeoutInSecond": r.heartbeatTimeoutInSecond, "jars": list(r.jars),
            "numExecutors": r.numExecutors or 0, "pyFiles": list(r.pyFiles), "queue": r.queue,
        }

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


class Batch:
    def __init__(self, gw: "Gateway", bid: int, req: CreateRequest, owner: str | None) -> None:
        self.gw = gw
        self.id = bid
        self.req = req
        self.name = req.name
        self.owner = owner
        self.proxy_user = req.proxyUser
        self.state = "starting"
        self.app_id: str | None = None
        self.dir = gw.state_dir / "batches" / str(bid)
        self.log_path = self.dir / "batch.log"
        self.proc: subprocess.Popen | None = None
        self.finished_at: float | None = None
        self.error: str | None = None
        self.task: asyncio.Task | None = None

    def to_json(self) -> dict:
        if self.app_id is None:
            self._find_app_id()
        return {"id": self.id, "name": self.name, "owner": self.owner,
                "proxyUser": self.proxy_user, "state": self.state, "appId": self.app_id,
                "appInfo": {"driverLogUrl": None, "sparkUiUrl": None, "executorLogUrls": None},
                "log": self.log_tail(20)}

    def _find_app_id(self) -> None:
        for line in tail_lines(self.log_path, 400, max_bytes=256_000):
            m = APP_ID.search(line)
            if m:
                self.app_id = m.group(1)
                return

    def log_tail(self, n: int) -> list[str]:
        lines = tail_lines(self.log_path, n)
        if self.error:
            lines = (lines + [f"labwork gateway: {self.error}"])[-n:]
        return lines

    def all_log(self) -> list[str]:
        lines = all_lines(self.log_path)
        if self.error:
            lines.append(f"labwork gateway: {self.error}")
        return lines

    def command(self) -> list[str]:
        r = self.req
        home = spark_home()
        cmd = [str(home / "bin" / "spark-submit"), "--master", self.gw.settings.master]
        if r.className:
            cmd += ["--class", r.className]
        conf = self.gw.base_conf(r, kind="pyspark", for_batch=True)
        for key, value in conf.items():
            cmd += ["--conf", f"{key}={value}"]
        cmd.append(r.file or "")
        cmd += list(r.args)
        return cmd

    async def run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        env = self.gw.driver_env()
        try:
            with open(self.log_path, "ab", buffering=0) as logf:
                self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=subprocess.STDOUT, cwd=str(self.dir), env=env,
                                             start_new_session=True, umask=user_umask())
        except OSError as exc:
            self.error = f"spark-submit did not start: {exc}"
            self._set("dead")
            return
        self._set("running")
        code = await asyncio.to_thread(self.proc.wait)
        if self.state == "killed":
            return
        self._find_app_id()
        if code == 0:
            self._set("success")
        else:
            self.error = f"spark-submit exited with code {code}"
            self._set("dead")

    def _set(self, state: str) -> None:
        self.state = state
        if state in FINISHED_STATES and self.finished_at is None:
            self.finished_at = time.monotonic()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._set("killed")
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 5)
            except asyncio.TimeoutError:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.task is not None:
            self.task.cancel()


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
        self.pool: list[Driver] = []
        self._pool_starting = 0
        self._pool_tasks: set[asyncio.Task] = set()
        self.started = False
        self._start_lock: asyncio.Lock | None = None
        self._housekeeper: asyncio.Task | None = None
        self._callbacks = ThreadPoolExecutor(max_workers=2, thread_name_prefix="livy-on-statement")
        self.idle_timeout_s = parse_duration(settings.idle_timeout, "gateway.idle_timeout") or 0
        self.retain_s = parse_duration(settings.retain_finished, "gateway.retain_finished") or 0
        self._ids = {"session": 0, "batch": 0}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.orphan_grace_s = max(self.idle_timeout_s, 600.0)

    # -- ids / persistence -----------------------------------------------------------------------
    @property
    def ids_file(self) -> Path:
        return self.state_dir / "ids.json"

    def _next_id(self, what: str) -> int:
        n = self._ids[what]
        self._ids[what] = n + 1
        tmp = self.ids_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._ids))
        tmp.replace(self.ids_file)
        return n

    def session_meta_path(self, sid: int) -> Path:
        return self.state_dir / "sessions" / f"{sid}.json"

    def save_session(self, s: Session) -> None:
        path = self.session_meta_path(s.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(s.to_meta(), default=str))
        tmp.replace(path)
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
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "sessions").mkdir(exist_ok=True)
        try:
            self._ids.update(json.loads(self.ids_file.read_text()))
        except (OSError, ValueError):
            pass
        await self._recover()
        self._housekeeper = asyncio.ensure_future(self._housekeeping())
        self._fill_pool()

    async def _recover(self) -> None:
        for path in sorted((self.state_dir / "sessions").glob("*.json")):
            try:
                meta = json.loads(path.read_text())
                sid = int(meta["id"])
                self._ids["session"] = max(self._ids["session"], sid + 1)
                ddir = Path(meta["driver_dir"]) if meta.get("driver_dir") else None
                dmeta = json.loads((ddir / "driver.json").read_text()) if ddir else None
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            driver = Driver(ddir) if ddir else None
            if driver is None or dmeta is None or not driver.attach(dmeta):
                log.info("session %s: its driver is gone; not recovered", sid)
                path.unlink(missing_ok=True)
                if ddir is not None:
                    shutil.rmtree(ddir, ignore_errors=True)
                continue
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
        for task in list(self._pool_tasks):
            task.cancel()
        await asyncio.gather(*self._pool_tasks, return_exceptions=True)
        await asyncio.gather(*(d.stop() for d in self.pool), return_exceptions=True)
        self.pool.clear()
        self.sessions.clear()
        self.batches.clear()
        self.started = False

    def kill_all_sync(self) -> None:
        """Last resort at interpreter exit: end every driver and batch process."""
        for s in list(self.sessions.values()):
            if s.driver is not None:
                s.driver.kill_now()
        for d in self.pool:
            d.kill_now()
        for b in self.batches.values():
            if b.proc is not None and b.proc.poll() is None:
                try:
                    os.killpg(b.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # -- drivers ---------------------------------------------------------------------------------
    def driver_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key in ("PYSPARK_DRIVER_PYTHON", "PYSPARK_DRIVER_PYTHON_OPTS", "PYSPARK_SUBMIT_ARGS",
                    "JPY_PARENT_PID", "LABWORK_TOKEN"):
            env.pop(key, None)
        env["PYSPARK_PYTHON"] = env.get("PYSPARK_PYTHON") or sys.executable
        env["MPLBACKEND"] = "Agg"
        env["PYTHONUNBUFFERED"] = "1"
        env["IPYTHONDIR"] = str(self.state_dir / "ipython")
        if self.settings.master.startswith("local"):  # the UI on loopback like the driver (not setdefault:
            env["SPARK_LOCAL_IP"] = "127.0.0.1"        # a shell's 0.0.0.0 would open the UI to the net)
        return env

    def base_conf(self, req: CreateRequest | None, kind: str, *, for_batch: bool = False,
                  driver_dir: Path | None = None) -> dict[str, str]:
        s = self.settings
        conf: dict[str, str] = {
            "spark.driver.memory": s.driver_memory,
            "spark.driver.cores": str(s.driver_cores),
            "spark.executor.memory": s.executor_memory,
            "spark.executor.cores": str(s.executor_cores),
            "spark.ui.showConsoleProgress": "false",
        }
        if not for_batch:
            conf["spark.master"] = s.master
            conf["spark.ui.port"] = "0"
            conf["spark.app.name"] = "livy-session"
            if driver_dir is not None:
                conf["spark.sql.warehouse.dir"] = str(driver_dir / "spark-warehouse")
                conf["spark.driver.extraJavaOptions"] = (
                    f"-Dderby.system.home={driver_dir} -Djava.io.tmpdir={driver_dir / 'tmp'}")
                if kind in ("spark", "shared"):
                    conf["spark.repl.class.outputDir"] = str(driver_dir / "repl-classes")
        if s.master.startswith("local"):
            conf["spark.driver.host"] = "127.0.0.1"
            conf["spark.driver.bindAddress"] = "127.0.0.1"
        if req is not None:
            conf.update(req.spark_conf())
        return conf

    async def launch_driver(self, req: CreateRequest | None, kind: str, label: str,
                            on_created: Callable[[Driver], None] | None = None) -> Driver:
        import uuid
        ddir = self.state_dir / "drivers" / f"{label}-{uuid.uuid4().hex[:8]}"
        (ddir / "tmp").mkdir(parents=True, exist_ok=True)
        (ddir / "repl-classes").mkdir(exist_ok=True)
        driver = Driver(ddir)
        if on_created is not None:
            on_created(driver)
        env = self.driver_env()
        env["SPARK_LOCAL_DIRS"] = str(ddir / "tmp")
        driver.launch(env=env)
        cfg = {"conf": self.base_conf(req, kind, driver_dir=ddir), "secret": driver.secret,
               "gateway_pid": os.getpid(), "orphan_grace_s": self.orphan_grace_s,
               "sql_max_rows": 1000, "max_output_bytes": self.settings.max_output_bytes}
        boot = asyncio.ensure_future(driver.boot(cfg, STARTUP_TIMEOUT_S))
        death = asyncio.ensure_future(driver.dead.wait())
        try:
            await asyncio.wait({boot, death}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            boot.cancel()
            death.cancel()
            await driver.stop(grace=2)
            raise
        death.cancel()
        if not boot.done():
            boot.cancel()
            tail = "\n".join(tail_lines(driver.err_path, 5))
            raise DriverDied(f"{driver.death_reason()}\n{tail}")
        try:
            boot.result()
        except BaseException:
            await driver.stop(grace=2)
            raise
        return driver

    def _pool_eligible(self, req: CreateRequest) -> bool:
        r = req
        return (not r.conf and not r.jars and not r.pyFiles and not r.files and not r.archives
                and r.driverMemory is None and r.driverCores is None and r.executorMemory is None
                and r.executorCores is None and r.numExecutors is None and r.queue is None)

    def _fill_pool(self) -> None:
        want = self.settings.warm_pool - len(self.pool) - self._pool_starting
        for _ in range(max(0, want)):
            self._pool_starting += 1
            task = asyncio.ensure_future(self._add_warm())
            self._pool_tasks.add(task)
            task.add_done_callback(self._pool_tasks.discard)

    async def _add_warm(self) -> None:
        made: list[Driver] = []
        try:
            drv = await self.launch_driver(None, "shared", "warm", on_created=made.append)
            if self.started:
                self.pool.append(drv)
            else:
                await drv.stop()
                shutil.rmtree(drv.dir, ignore_errors=True)
        except Exception as exc:  # noqa: BLE001
            log.warning("warm driver failed to start: %s", exc)
            for d in made:
                shutil.rmtree(d.dir, ignore_errors=True)
        finally:
            self._pool_starting -= 1

    def _take_warm(self) -> Driver | None:
        while self.pool:
            drv = self.pool.pop(0)
            if not drv.dead.is_set():
                self._fill_pool()
                return drv
        return None

    # -- sessions --------------------------------------------------------------------------------
    def lookup(self, key: str | int) -> Session:
        s = None
        text = str(key)
        if (number := parse_id(key)) is not None:
            s = self.sessions.get(number)
        else:
            for cand in self.sessions.values():
                if cand.name == text:
                    s = cand
                    break
        if s is None:
            raise LivyError(404, f"Session '{key}' not found.")
        s.touch()
        return s

    def lookup_batch(self, key: str | int) -> Batch:
        b = None
        text = str(key)
        if (number := parse_id(key)) is not None:
            b = self.batches.get(number)
        else:
            b = next((c for c in self.batches.values() if c.name == text), None)
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
        sid = self._next_id("session")
        s = Session(self, sid, req, owner)
        s.set_state("starting")
        self.sessions[sid] = s
        warm = self._take_warm() if self._pool_eligible(req) else None
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
            self.session_meta_path(s.id).unlink(missing_ok=True)
            if s.driver is not None:
                shutil.rmtree(s.driver.dir, ignore_errors=True)

    def statement_finished(self, s: Session, st: Statement) -> None:
        cb = self.on_statement
        if cb is None:
            return
        sess, stmt = s.to_json(log_lines=0), st.to_json()
        stmt["kind"] = st.kind

        def call() -> None:
            try:
                cb(sess, stmt)
            except Exception:  # noqa: BLE001 - a callback must never hurt the gateway
                log.exception("on_statement callback failed")

        try:
            self._callbacks.submit(call)
        except RuntimeError:
            pass

    def session_ended(self, s: Session) -> None:
        """Tell `on_session_end` (run history) that a session finished, with its state and why."""
        cb = self.on_session_end
        if cb is None:
            return
        sess = s.to_json(log_lines=0)
        sess["error"] = s.error

        def call() -> None:
            try:
                cb(sess)
            except Exception:  # noqa: BLE001 - a callback must never hurt the gateway
                log.exception("on_session_end callback failed")

        try:
            self._callbacks.submit(call)
        except RuntimeError:
            pass

    async def delete_project_sessions(self, project: str) -> int:
        """Delete every session whose conf tags it with `spark.labwork.project = project` (what
        labwork's Spark kernels send); returns how many. Called when the project's server stops."""
        mine = [s for s in list(self.sessions.values()) if str(s.req.conf.get(PROJECT_TAG) or "") == project]
        for s in mine:
            await self.delete_session(s)
        return len(mine)

    def delete_project_sessions_sync(self, project: str, timeout: float = 60.0) -> int:
        """`delete_project_sessions` from a thread other than the gateway's loop (the server
        manager's); 0 when the gateway never started (then it has no sessions)."""
        loop = self.loop
        if loop is None or not loop.is_running() or not self.started:
            return 0
        return asyncio.run_coroutine_threadsafe(self.delete_project_sessions(project), loop).result(timeout)

    # -- batches ---------------------------------------------------------------------------------
    def create_batch(self, req: CreateRequest, owner: str | None) -> Batch:
        if req.name is not None and any(b.name == req.name for b in self.batches.values()):
            raise bad(f"Duplicate batch name: {req.name}")
        bid = self._next_id("batch")
        b = Batch(self, bid, req, owner)
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
        for d in list(self.pool):
            if d.dead.is_set():
                self.pool.remove(d)
                self._fill_pool()
