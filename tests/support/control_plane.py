"""The one control-plane factory: `labwork serve` in a subprocess, as a user runs it.

A test folder's variant is one line: `ControlPlane(home, env={...}, config="...", db=url)`.
The port is chosen up front, so `url` is known before `start()` (a kernel can be given it while
the plane is still down) and a restart comes back on the same port.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.waiting import free_port

REPO = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = REPO / "test-artifacts"


class ControlPlane:
    """A real control plane for tests. Its environment holds no LABWORK_* variable of the test
    process (only LABWORK_HOME and `env`), and no display, so it never opens a browser."""

    def __init__(self, home: Path, *, port: int | None = None, db: str | None = None,
                 env: dict[str, str] | None = None, config: str | None = None) -> None:
        self.home = Path(home)
        self.port = port or free_port()
        self.db = db
        self.extra_env = dict(env or {})
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.log = self.home / "serve-test.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("LABWORK_") and k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env["LABWORK_HOME"] = str(self.home)
        env.update(self.extra_env)
        return env

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def headers(self) -> dict[str, str]:
        """The bearer header of this plane's token (empty before its first start)."""
        try:
            return {"Authorization": f"Bearer {self.token}"}
        except OSError:
            return {}

    def start(self, timeout: float = 90.0) -> ControlPlane:
        """Run `labwork serve` and wait until `/api/status` answers with the token."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.config is not None and not (self.home / "config.toml").exists():
            (self.home / "config.toml").write_text(self.config)
        cmd = [sys.executable, "-m", "labwork", "serve", "--port", str(self.port)]
        if self.db:
            cmd += ["--db", self.db]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"control plane exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/status", headers=self.headers(), timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"control plane did not answer within {timeout:g} s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it with `sig` (SIGTERM: a clean shutdown) and wait; kill it if it hangs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ talking to it
    def client(self, timeout: float = 180) -> httpx.Client:
        """An HTTP client of the API with the token (close it, or use it in `with`)."""
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=timeout)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """One API call that must succeed: its JSON (or bytes when the answer is not JSON)."""
        r = httpx.request(method, f"{self.url}{path}", headers=self.headers(), timeout=30, **kw)
        r.raise_for_status()
        return r.json() if "json" in r.headers.get("content-type", "") else r.content

    def runs(self, **params: Any) -> list[dict[str, Any]]:
        return self.request("GET", "/api/runs", params=params)["runs"]

    def register(self, folder: Path) -> dict[str, Any]:
        """Register a project folder (idempotent): {id, name, path}."""
        return self.request("POST", "/api/projects", json={"path": str(folder)})

    def make_project(self, root: Path, name: str) -> dict[str, Any]:
        """`labwork init` a fresh folder and register it: {id, name, path}."""
        from labwork.project import init_project
        init_project(root, name)
        return self.register(root)

    def cli(self, *args: str, check: bool = True, cwd: Path | None = None,
            timeout: float = 300, input_text: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run `labwork ARGS` against this control plane's home (`input_text` on its stdin, `env`
        added to its environment)."""
        proc = subprocess.run([sys.executable, "-m", "labwork", *args], env={**self.env, **(env or {})},
                              cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"labwork {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc
