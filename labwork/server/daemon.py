"""Finding, serving and background-starting the control plane.

A running control plane writes `LABWORK_HOME/control.json` (url, pid, port); the CLI reads it,
checks the pid and `/api/status`, and starts one in the background when none answers.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from labwork.errors import Unavailable
from labwork.server.token import load_or_create_token
from labwork.settings import Settings


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", start: int = 0) -> int:
    """`start` if free, else the next free one; 0 asks the OS."""
    if start:
        for port in range(start, start + 200):
            if port_free(host, port):
                return port
        raise Unavailable(f"no free port in {start}..{start + 199}", where=host)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_control(settings: Settings) -> dict[str, Any] | None:
    try:
        return json.loads(settings.control_file.read_text())
    except (OSError, ValueError):
        return None


def running(settings: Settings, timeout: float = 2.0) -> dict[str, Any] | None:
    """The control plane's record if it runs and answers with our token, else None."""
    info = read_control(settings)
    if not info or not pid_alive(info.get("pid")):
        return None
    token = load_or_create_token(settings.token_file)
    try:
        r = httpx.get(f"{info['url']}/api/status", headers={"Authorization": f"Bearer {token}"},
                      timeout=timeout)
    except httpx.HTTPError:
        return None
    return info if r.status_code == 200 else None


def serve(settings: Settings, projects: list[str] | None = None) -> None:
    """Run the control plane in this process until interrupted; `projects` are registered first."""
    import uvicorn

    from labwork.server.app import create_app

    existing = running(settings)
    if existing:
        raise Unavailable(f"a control plane already runs for {settings.home} at {existing['url']}",
                          hint="stop it first, or use another LABWORK_HOME")
    port = settings.port
    if port == 0:
        port = free_port(settings.host)
    elif not port_free(settings.host, port):
        raise Unavailable(f"port {port} on {settings.host} is taken", where="--port",
                          hint="choose another with --port, or --port 0 for any free one")
    host_for_url = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    url = f"http://{host_for_url}:{port}"
    app = create_app(settings, url=url)
    token = app.state.ctx.token
    from labwork.project.registry import register_project
    registered = [register_project(app.state.ctx.store, folder) for folder in projects or []]
    settings.control_file.write_text(json.dumps({"url": url, "pid": os.getpid(), "port": port,
                                                 "host": settings.host, "started": time.time()}))
    print(f"labwork control plane for {settings.home}", flush=True)
    print(f"  dashboard: {url}/?token={token}", flush=True)
    print(f"  API docs:  {url}/api/docs (token required)", flush=True)
    for row in registered:
        print(f"  project {row['name']}: {url}/projects/{row['id']}/jupyter?token={token}", flush=True)
    try:
        uvicorn.run(app, host=settings.host, port=port, log_level="warning", access_log=False)
    finally:
        info = read_control(settings)
        if info and info.get("pid") == os.getpid():
            settings.control_file.unlink(missing_ok=True)


def start_background(settings: Settings, timeout: float = 60.0) -> dict[str, Any]:
    """Start `labwork serve` detached, its output in `LABWORK_HOME/logs/control.log`."""
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log = open(settings.logs_dir / "control.log", "ab")
    port = settings.port if port_free(settings.host, settings.port) else 0
    env = dict(os.environ, LABWORK_HOME=str(settings.home))
    cmd = [sys.executable, "-m", "labwork", "serve", "--host", settings.host, "--port", str(port)]
    if settings.db:
        cmd += ["--db", settings.db]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = running(settings, timeout=1.0)
        if info and info.get("pid") == proc.pid:
            return info
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = _tail(settings.logs_dir / "control.log")
    raise Unavailable("the control plane did not start", where=str(settings.logs_dir / "control.log"),
                      details={"log": tail}, hint=tail.splitlines()[-1] if tail else None)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
