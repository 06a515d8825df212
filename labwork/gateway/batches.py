"""Livy batches: one `spark-submit` process each, its state and its log."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from labwork.gateway.logs import all_lines
from labwork.processes import tail
from labwork.gateway.protocol import FINISHED_STATES, CreateRequest
from labwork.gateway.spark_conf import DriverConfig
from labwork.private import user_umask

APP_ID = re.compile(r"\b(application_\d+_\d+|app-\d{14}-\d{4,}|local-\d{10,}|spark-[0-9a-f]{32})\b")


def spark_home() -> Path:
    """The Spark installation spark-submit comes from (pyspark's own)."""
    import pyspark
    from pyspark.find_spark_home import _find_spark_home
    try:
        return Path(_find_spark_home())
    except Exception:
        return Path(pyspark.__file__).parent


class Batch:
    """One spark-submit run (Livy's batch): its process, state and log."""

    def __init__(self, bid: int, req: CreateRequest, owner: str | None, *, folder: Path,
                 config: DriverConfig) -> None:
        self.config = config
        self.id = bid
        self.req = req
        self.name = req.name
        self.owner = owner
        self.proxy_user = req.proxyUser
        self.state = "starting"
        self.app_id: str | None = None
        self.dir = folder
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
        for line in tail(self.log_path, 400, max_bytes=256_000):
            m = APP_ID.search(line)
            if m:
                self.app_id = m.group(1)
                return

    def log_tail(self, n: int) -> list[str]:
        lines = tail(self.log_path, n)
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
        cmd = [str(home / "bin" / "spark-submit"), "--master", self.config.master]
        if r.className:
            cmd += ["--class", r.className]
        conf = self.config.batch_conf(r)
        for key, value in conf.items():
            cmd += ["--conf", f"{key}={value}"]
        cmd.append(r.file or "")
        cmd += list(r.args)
        return cmd

    async def run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        env = self.config.env()
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

