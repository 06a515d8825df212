"""One Spark driver process: an IPython kernel (ipykernel) whose start-up makes the SparkSession.

The gateway talks to it through `jupyter_client` on the shell channel only: the start-up is an
execute request (`labwork.gateway.in_driver.boot`), and every statement is one message of our own
type, `labwork_run_request`, answered with the statement's Livy output. Nothing polls: replies are
awaited on the kernel's ZMQ socket, and the process's exit is awaited in a thread that sets an
asyncio event.

The kernel runs in its own process group (so a Ctrl-C to the gateway never reaches it and a delete
can end the kernel and its JVM together), writes its stdout and stderr (Python's and the JVM's,
spark-submit's among them) to `stdout.log` and `stderr.log` (served as the session's log, as Livy
serves spark-submit's output), and can be re-attached after a gateway restart from `driver.json`.
"""
from __future__ import annotations

import ast
import asyncio
import base64
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from labwork.private import user_umask

log = logging.getLogger("labwork.gateway")


class DriverDied(Exception):
    """The driver process ended (or its kernel stopped answering)."""


class Driver:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.conn_file = directory / "kernel.json"
        self.out_path = directory / "stdout.log"
        self.err_path = directory / "stderr.log"
        self.meta_path = directory / "driver.json"
        self.pid: int | None = None
        self.create_time: float | None = None
        self.side_port: int | None = None
        self.secret = secrets.token_hex(16)
        self.info: dict[str, Any] = {}
        self.proc: subprocess.Popen | None = None
        self.client = None
        self.dead = asyncio.Event()
        self.exit_code: int | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self._side_lock = asyncio.Lock()
        self._side_conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- start / attach -------------------------------------------------------------------------
    def launch(self, *, env: dict[str, str], python: str | None = None) -> None:
        """Start the kernel process (returns at once; `boot` waits for the SparkSession)."""
        from jupyter_client.connect import write_connection_file
        self.dir.mkdir(parents=True, exist_ok=True)
        write_connection_file(str(self.conn_file), ip="127.0.0.1",
                              key=secrets.token_hex(16).encode())
        os.chmod(self.conn_file, 0o600)
        cmd = [python or sys.executable, "-m", "ipykernel_launcher", "-f", str(self.conn_file),
               "--IPKernelApp.capture_fd_output=False", "--HistoryManager.enabled=False",
               # parent_handle=1: no "Ctrl-C will not work" banner (and no parent poller on POSIX)
               "--IPKernelApp.parent_handle=1", "--IPKernelApp.log_level=ERROR"]
        with open(self.out_path, "ab", buffering=0) as outf, \
                open(self.err_path, "ab", buffering=0) as errf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=outf, stderr=errf,
                                         cwd=str(self.dir), env=env, start_new_session=True,
                                         umask=user_umask())
        self.pid = self.proc.pid
        try:
            import psutil
            self.create_time = psutil.Process(self.pid).create_time()
        except Exception:
            self.create_time = None
        self._start_watch()
        self._connect()

    def attach(self, meta: dict) -> bool:
        """Re-attach to a driver that outlived the gateway; False if it is gone."""
        import psutil
        pid, created = meta.get("pid"), meta.get("create_time")
        try:
            proc = psutil.Process(int(pid))
            if created is not None and abs(proc.create_time() - float(created)) > 1.0:
                return False
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
        except (psutil.Error, TypeError, ValueError):
            return False
        if not self.conn_file.exists():
            return False
        self.pid, self.create_time = int(pid), created
        self.side_port = meta.get("side_port")
        self.secret = meta.get("secret", self.secret)
        self.info = meta.get("info", {})
        self._start_watch()
        self._connect()
        return True

    def meta(self) -> dict:
        return {"pid": self.pid, "create_time": self.create_time, "side_port": self.side_port,
                "secret": self.secret, "info": self.info, "dir": str(self.dir)}

    def save_meta(self) -> None:
        tmp = self.meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.meta()))
        os.chmod(tmp, 0o600)
        tmp.replace(self.meta_path)

    def _connect(self) -> None:
        from jupyter_client.asynchronous import AsyncKernelClient
        self._loop = asyncio.get_running_loop()
        kc = AsyncKernelClient()
        kc.load_connection_file(str(self.conn_file))
        kc.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        self.client = kc
        self._reader = asyncio.ensure_future(self._read_replies())

    def _start_watch(self) -> None:
        loop = asyncio.get_running_loop()

        def wait() -> None:
            code: int | None = None
            try:
                if self.proc is not None:
                    code = self.proc.wait()
                else:
                    import psutil
                    try:
                        psutil.Process(self.pid).wait()
                    except psutil.Error:
                        pass
            finally:
                self.exit_code = code
                try:
                    loop.call_soon_threadsafe(self._on_exit)
                except RuntimeError:  # loop closed: the gateway is gone already
                    pass

        threading.Thread(target=wait, name=f"driver-wait-{self.pid}", daemon=True).start()

    def _on_exit(self) -> None:
        self.dead.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(DriverDied(self.death_reason()))
        self._pending.clear()

    def death_reason(self) -> str:
        code = self.exit_code
        if code is None:
            return "the Spark driver process ended"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"the Spark driver process was killed by {name}"
        return f"the Spark driver process exited with code {code}"

    async def _read_replies(self) -> None:
        chan = self.client.shell_channel
        while True:
            try:
                msg = await chan.get_msg()
            except asyncio.CancelledError:
                raise
            except Exception:  # socket closed or bad message
                if self.dead.is_set():
                    return
                await asyncio.sleep(0.05)
                continue
            parent = msg.get("parent_header", {}).get("msg_id")
            fut = self._pending.pop(parent, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def _request(self, msg: dict, timeout: float | None = None) -> dict:
        if self.dead.is_set() or self.client is None:
            raise DriverDied(self.death_reason())
        fut = asyncio.get_running_loop().create_future()
        self._pending[msg["header"]["msg_id"]] = fut
        self.client.shell_channel.send(msg)
        try:
            if timeout is None:
                return await fut
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(msg["header"]["msg_id"], None)

    async def boot(self, cfg: dict, timeout: float) -> dict:
        """Create the SparkSession in the driver; returns appId, sparkUiUrl, side_port."""
        payload = base64.b64encode(json.dumps(cfg).encode()).decode()
        code = f"import labwork.gateway.in_driver as __lw\n__lw.boot({payload!r})"
        msg = self.client.session.msg("execute_request", {
            "code": code, "silent": False, "store_history": False,
            "user_expressions": {"r": "__lw.reply()"}, "allow_stdin": False,
            "stop_on_error": True})
        reply = await self._request(msg, timeout)
        content = reply["content"]
        if content.get("status") != "ok":
            raise RuntimeError(f"{content.get('ename')}: {content.get('evalue')}")
        expr = content.get("user_expressions", {}).get("r", {})
        if expr.get("status") != "ok":
            raise RuntimeError(f"{expr.get('ename')}: {expr.get('evalue')}")
        raw = ast.literal_eval(expr["data"]["text/plain"])
        result = json.loads(base64.b64decode(raw)) if raw else {}
        if not result.get("ok"):
            raise RuntimeError(result.get("error") or "the SparkSession did not start")
        self.side_port = result.get("side_port")
        self.info = {k: result.get(k) for k in ("appId", "sparkUiUrl", "master", "sparkVersion")}
        return self.info

    async def ping(self, timeout: float = 30.0) -> dict:
        msg = self.client.session.msg("labwork_run_request", {"op": "info"})
        reply = await self._request(msg, timeout)
        result = reply["content"].get("result") or {}
        if result.get("ok"):
            self.info = {k: result.get(k) for k in ("appId", "sparkUiUrl", "master", "sparkVersion")}
            self.side_port = result.get("side_port") or self.side_port
        return result

    # -- statements -----------------------------------------------------------------------------
    async def run(self, statement_id: int, kind: str, code: str) -> dict:
        msg = self.client.session.msg("labwork_run_request",
                                      {"op": "run", "id": statement_id, "kind": kind, "code": code})
        reply = await self._request(msg)
        return reply["content"].get("result") or {}

    async def complete(self, code: str, cursor: int, timeout: float = 5.0,
                       kind: str = "pyspark") -> list[str]:
        if kind == "spark":  # the Scala REPL's completer, in the driver (member names, as Livy)
            msg = self.client.session.msg("labwork_run_request",
                                          {"op": "complete", "code": code, "cursor": cursor})
            try:  # the first call makes the REPL's compiler: give it longer
                reply = await self._request(msg, max(timeout, 60.0))
            except (asyncio.TimeoutError, DriverDied):
                return []
            return list((reply["content"].get("result") or {}).get("candidates") or [])
        msg = self.client.session.msg("complete_request", {"code": code, "cursor_pos": cursor})
        try:
            reply = await self._request(msg, timeout)
        except (asyncio.TimeoutError, DriverDied):
            return []
        content = reply["content"]
        start = content.get("cursor_start", cursor)
        # Livy answers whole tokens ("spark.range"), Jupyter the replacement of code[start:cursor]
        token_start = start
        while token_start > 0 and (code[token_start - 1].isalnum() or code[token_start - 1] in "._"):
            token_start -= 1
        prefix = code[token_start:start]
        return [prefix + m for m in content.get("matches", [])]

    async def side(self, op: str, timeout: float = 3.0, **kw: Any) -> dict:
        """One request on the driver's side channel (works while a statement runs)."""
        if not self.side_port or self.dead.is_set():
            return {"error": "no side channel"}
        async with self._side_lock:
            for attempt in range(2):
                try:
                    if self._side_conn is None:
                        self._side_conn = await asyncio.wait_for(
                            asyncio.open_connection("127.0.0.1", self.side_port), timeout)
                    reader, writer = self._side_conn
                    writer.write(json.dumps({"op": op, "secret": self.secret, **kw}).encode() + b"\n")
                    await writer.drain()
                    line = await asyncio.wait_for(reader.readline(), timeout)
                    if not line:
                        raise ConnectionError("side channel closed")
                    return json.loads(line)
                except (OSError, asyncio.TimeoutError, ValueError) as exc:
                    self._close_side()
                    if attempt:
                        return {"error": str(exc) or type(exc).__name__}
        return {"error": "unreachable"}

    def _close_side(self) -> None:
        if self._side_conn is not None:
            try:
                self._side_conn[1].close()
            except Exception:
                pass
        self._side_conn = None

    def interrupt(self) -> None:
        if self.pid and not self.dead.is_set():
            try:
                os.kill(self.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    # -- stop -----------------------------------------------------------------------------------
    def signal_group(self, sig: int) -> None:
        if not self.pid:
            return
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the driver's process group (the JVM cleans its temp dirs), SIGKILL after grace."""
        self.close_client()
        if self.pid is None or self.dead.is_set():
            self._reap_group()
            return
        self.signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.dead.wait(), grace)
        except asyncio.TimeoutError:
            self.signal_group(signal.SIGKILL)
            try:
                await asyncio.wait_for(self.dead.wait(), 5)
            except asyncio.TimeoutError:
                log.warning("driver %s did not exit after SIGKILL", self.pid)
        self._reap_group()

    def _reap_group(self) -> None:
        """The JVM ends when its Python parent goes (its stdin closes); make sure of it."""
        if not self.pid:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def kill_now(self) -> None:
        """Synchronous SIGTERM then SIGKILL of the group (for shutdown paths without a loop)."""
        self.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and self.alive():
            time.sleep(0.05)
        self.signal_group(signal.SIGKILL)

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def close_client(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        self._close_side()
        if self.client is not None:
            try:
                self.client.stop_channels()
            except Exception:
                pass
            self.client = None
