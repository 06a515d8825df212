"""Real ipykernel kernels with the labwork kernel environment, started the way jupyter_server
starts them, and the spool files they write when the control plane is away."""
from __future__ import annotations

import json
import os
import queue
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


class CellRunner:
    """Cells run on a started kernel: `km` its manager, `kc` its (started) blocking client."""

    km: Any
    kc: Any

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

    def shell_reply(self, msg_id: str, timeout: float = 60) -> dict:
        """The shell reply to `msg_id` (stale kernel_info replies from wait_for_ready are skipped)."""
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

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
        reply = self.shell_reply(msg_id, timeout=timeout)
        res.status = reply["content"]["status"]
        return res


class Kernel(CellRunner):
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
