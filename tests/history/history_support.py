"""Helpers for run-history tests: a real control plane in a subprocess, real ipykernel kernels with
the labwork kernel environment, polling."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from labwork.server.daemon import free_port

HERE = Path(__file__).parent
SERVE = HERE / "serve_cp.py"


# --- a control plane -------------------------------------------------------------------------------

class ControlPlane:
    def __init__(self, home: Path, port: int | None = None, db: str | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.db = db
        self.proc: subprocess.Popen | None = None
        self.log = home / "cp-test.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def start(self, timeout: float = 90.0) -> ControlPlane:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABWORK_")}
        env["LABWORK_HOME"] = str(self.home)
        cmd = [sys.executable, str(SERVE), str(self.home), str(self.port)] + ([self.db] if self.db else [])
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"control plane exited: {self.log.read_text()[-3000:]}")
            try:
                r = httpx.get(f"{self.url}/api/status", headers=self.headers(), timeout=2)
                if r.status_code == 200:
                    return self
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"control plane did not answer: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def headers(self) -> dict[str, str]:
        try:
            return {"Authorization": f"Bearer {self.token}"}
        except OSError:
            return {}

    def api(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, f"{self.url}{path}", headers=self.headers(), timeout=30, **kw)
        r.raise_for_status()
        return r.json() if "json" in r.headers.get("content-type", "") else r.content

    def runs(self, **params: Any) -> list[dict[str, Any]]:
        return self.api("GET", "/api/runs", params=params)["runs"]


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    """Poll until `predicate()` is truthy (a wait with a generous limit, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - keep polling while the other side comes up
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"gave up waiting for {what}; last: {last!r}")


# --- real kernels -------------------------------------------------------------------------------------

def kernel_env(home: Path, project: Path | None, *, url: str | None, notebook: str | None,
               history: bool = False, runconfig: str = "local") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABWORK_", "JPY_"))}
    env["LABWORK_HOME"] = str(home)
    if url:
        env["LABWORK_URL"] = url
    if project is not None:
        env["LABWORK_PROJECT_DIR"] = str(project)
        env["LABWORK_PROJECT"] = "myIris"
    env["LABWORK_RUNCONFIG"] = runconfig
    env["LABWORK_HISTORY"] = "1" if history else "0"
    env["LABWORK_HISTORY__FLUSH_INTERVAL_S"] = "0.05"
    if notebook:
        env["JPY_SESSION_NAME"] = notebook
    return env


@dataclass
class CellResult:
    status: str
    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = [self.stdout, self.stderr]
        for o in self.outputs:
            if o.get("msg_type") in ("execute_result", "display_data"):
                parts.append(o["content"]["data"].get("text/plain", ""))
        if self.error:
            parts.append(f"{self.error.get('ename')}: {self.error.get('evalue')}")
        return "\n".join(parts)


class Kernel:
    """A real ipykernel started with jupyter_client, as jupyter_server would (kernel-<id>.json)."""

    def __init__(self, env: dict[str, str], cwd: Path, runtime: Path, preload: bool = True) -> None:
        from jupyter_client import KernelManager
        self.kernel_id = str(uuid.uuid4())
        runtime.mkdir(parents=True, exist_ok=True)
        self.km = KernelManager(kernel_name="python3",
                                connection_file=str(runtime / f"kernel-{self.kernel_id}.json"))
        extra = ["--IPKernelApp.extensions=['labwork']"] if preload else []
        self.km.start_kernel(env=env, cwd=str(cwd), extra_arguments=extra)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 120.0, on_output=None) -> CellResult:
        res = CellResult(status="?")

        def hook(msg):
            kind = msg["msg_type"]
            if kind == "stream":
                if msg["content"]["name"] == "stdout":
                    res.stdout += msg["content"]["text"]
                else:
                    res.stderr += msg["content"]["text"]
                if on_output:
                    on_output(msg["content"]["text"])
            elif kind in ("execute_result", "display_data"):
                res.outputs.append({"msg_type": kind, "content": msg["content"]})
            elif kind == "error":
                res.error = msg["content"]

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        res.status = reply["content"]["status"]
        return res

    def run_and_interrupt(self, code: str, marker: str, timeout: float = 120.0) -> CellResult:
        """Run a cell, interrupt it once it printed `marker`, return its result."""
        seen = queue.Queue()
        msg_id = self.kc.execute(code)
        res = CellResult(status="?")
        deadline = time.monotonic() + timeout
        interrupted = False
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                res.stdout += msg["content"]["text"]
                if marker in res.stdout and not interrupted:
                    interrupted = True
                    self.km.interrupt_kernel()
            elif kind == "error":
                res.error = msg["content"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        del seen
        reply = self.kc.get_shell_msg(timeout=timeout)
        res.status = reply["content"]["status"]
        return res

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=False)


def spool_records(home: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted((home / "spool").glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out
