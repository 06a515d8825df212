"""Finding, serving and background-starting the control plane.

One control plane per `LABWORK_HOME`. `serve` holds an exclusive lock on `LABWORK_HOME/control.lock`
from before it writes anything until it exits (the kernel drops it when the process dies, even by
SIGKILL), and writes `control.json` (url, pid, port, home, state) as soon as its port is known, in
state "starting". The CLI waits for a starting one, checks a running one with `/api/status`, and
starts one in the background only when the lock is free; a `control.json` left behind by a killed
process (lock free) is ignored and replaced.
"""
from __future__ import annotations

import fcntl
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from labwork.errors import Unavailable
from labwork.processes import free_port, pid_alive, port_free, tail
from labwork.private import (make_tree_private, open_private, private_dir, private_file,
                             restrict_umask, write_private)
from labwork.auth.token import load_or_create_token

if TYPE_CHECKING:  # the CLI finds a running control plane without building the settings model
    from labwork.settings import Settings


# ------------------------------------------------------------------------- one per LABWORK_HOME
class HomeLock:
    """The exclusive lock a control plane holds on its LABWORK_HOME while it starts and runs."""

    def __init__(self, home: Path) -> None:
        self.path = home / "control.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        private_file(self.path)
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def lock_held(settings: Settings) -> bool:
    """Whether a control plane (starting, running or stopping) holds this home's lock."""
    if not settings.home.is_dir():
        return False
    lock = HomeLock(settings.home)
    if lock.acquire():
        lock.release()
        return False
    return True


def read_control(settings: Settings) -> dict[str, Any] | None:
    return _read_control(settings.home)


def _read_control(home: Path) -> dict[str, Any] | None:
    try:
        return json.loads((home / "control.json").read_text())
    except (OSError, ValueError):
        return None


def _write_control(settings: Settings, record: dict[str, Any]) -> None:
    write_private(settings.control_file, json.dumps(record))


def running(settings: Settings, timeout: float = 2.0) -> dict[str, Any] | None:
    """The control plane's record if it runs for this home and answers with our token, else None."""
    return running_at(settings.home, timeout)


def running_at(home: Path, timeout: float = 2.0) -> dict[str, Any] | None:
    """`running` for the LABWORK_HOME `home` (its `control.json` and `token`), without settings."""
    info = _read_control(home)
    if not info or not pid_alive(info.get("pid")) or not info.get("url"):
        return None
    token = load_or_create_token(home / "token")
    status, answer = _get_json(info["url"], "/api/status", token, timeout)
    found = answer.get("home") if status == 200 and isinstance(answer, dict) else None
    if status != 200 or (found and Path(found) != home):
        return None
    return {**info, "state": "running"}


def _get_json(url: str, path: str, token: str, timeout: float) -> tuple[int, Any]:
    """GET `path` of the control plane at `url` with the token: (status, JSON or None); (0, None)
    when it does not answer. Plain http.client: the CLI asks this first, and httpx costs time."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        r = conn.getresponse()
        body = r.read()
        try:
            return r.status, json.loads(body) if body else None
        except ValueError:
            return r.status, None
    except (OSError, http.client.HTTPException):
        return 0, None
    finally:
        conn.close()


def wait_running(settings: Settings, timeout: float = 120.0) -> dict[str, Any] | None:
    """Wait for the control plane that holds this home's lock to answer; None if it goes away."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = running(settings, timeout=1.0)
        if info:
            return info
        if not lock_held(settings):
            return running(settings, timeout=1.0)
        time.sleep(0.1)
    return None


def other_on_port(settings: Settings) -> dict[str, Any] | None:
    """What holds this home's port when it is not this home's control plane: the control plane of
    the default LABWORK_HOME, ~/.labwork (`home` known), or another program (`home` None); None
    if the port is free."""
    if not settings.port or port_free(settings.host, settings.port, reuse_addr=True):
        return None
    other: dict[str, Any] = {"url": f"http://{_url_host(settings.host)}:{settings.port}", "home": None}
    default = Path.home() / ".labwork"
    if default != settings.home:
        try:
            info = json.loads((default / "control.json").read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("port") == settings.port and pid_alive(info.get("pid")):
            other["home"] = str(default)
    return other


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


# ------------------------------------------------------------------------------------ serving
def _stop_on_sigterm() -> None:
    """uvicorn shuts down on SIGTERM, then re-raises it with the handler it found: make that
    handler an exit, so `finally` blocks (control.json removal) run instead of a silent death."""
    def _exit(_sig: int, _frame: object) -> None:
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, _exit)


def serve(settings: Settings, samples: list[str] | None = None, *, print_token: bool = True) -> None:
    """Run the control plane in this process until interrupted; `samples` (project folders) are
    copied under LABWORK_HOME/samples and the copies registered first.

    Everything it creates is private (umask 077; processes it starts for the user get the user's
    umask back) and an older installation's tree is tightened once here. `print_token=False` (the
    CLI's background start, whose output is a log file) keeps the token out of the output."""
    import uvicorn

    from labwork.server.app import create_app

    restrict_umask()
    private_dir(settings.home)
    make_tree_private(settings.home)
    lock = HomeLock(settings.home)
    if not lock.acquire():
        info = running(settings) or read_control(settings) or {}
        state = "runs" if info.get("state") == "running" else "is starting or stopping"
        at = f" at {info['url']}" if info.get("url") else ""
        raise Unavailable(f"a control plane {state} for {settings.home}{at}",
                          hint="stop it first, or use another LABWORK_HOME")
    _stop_on_sigterm()
    record: dict[str, Any] = {}
    try:
        port = settings.port
        if port == 0:
            port = free_port(settings.host)
        elif not port_free(settings.host, port, reuse_addr=True):
            raise Unavailable(f"port {port} on {settings.host} is taken", where="--port",
                              hint="choose another with --port, or --port 0 for any free one")
        url = f"http://{_url_host(settings.host)}:{port}"
        record = {"url": url, "pid": os.getpid(), "port": port, "host": settings.host,
                  "home": str(settings.home), "state": "starting", "started": time.time()}
        _write_control(settings, record)
        app = create_app(settings, url=url)
        token = app.state.services.token
        from labwork.project.registry import register_project
        from labwork.server.samples import sample_copy
        registered = [register_project(app.state.services.store, str(sample_copy(folder, settings.home)))
                      for folder in samples or []]
        app.state.services.startup.append(lambda: _write_control(settings, {**record, "state": "running"}))
        secret = f"?token={token}" if print_token else ""
        print(f"labwork control plane for {settings.home}", flush=True)
        print(f"  dashboard: {url}/{secret}" + ("" if print_token else f"  (token in {settings.token_file})"),
              flush=True)
        print(f"  API docs:  {url}/api/docs (token required)", flush=True)
        for row in registered:
            print(f"  project {row['name']} (a copy in {row['path']}): {url}/projects/{row['id']}/jupyter{secret}",
                  flush=True)
        uvicorn.run(app, host=settings.host, port=port, log_level="warning", access_log=False)
    finally:
        info = read_control(settings)
        if info and info.get("pid") == os.getpid():
            settings.control_file.unlink(missing_ok=True)
        lock.release()


def start_background(settings: Settings, timeout: float = 60.0) -> dict[str, Any]:
    """Start `labwork serve` detached, its output in `LABWORK_HOME/logs/control.log` (no token in
    it). If another start wins the race for this home, its control plane is the answer."""
    log_path = private_dir(settings.logs_dir) / "control.log"
    port = settings.port if port_free(settings.host, settings.port, reuse_addr=True) else 0
    env = dict(os.environ, LABWORK_HOME=str(settings.home))
    cmd = [sys.executable, "-m", "labwork", "serve", "--host", settings.host, "--port", str(port),
           "--background"]
    if settings.db:
        cmd += ["--db", settings.db]
    with open_private(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = running(settings, timeout=1.0)
        if info:
            return info
        if proc.poll() is not None and not lock_held(settings):
            break
        time.sleep(0.1)
    last = "\n".join(tail(log_path))
    raise Unavailable("the control plane did not start", where=str(log_path),
                      details={"log": last}, hint=last.splitlines()[-1] if last else None)

