"""The Jupyter servers a test control plane started: a client of one, and stopping them all.

Everything a test starts is stopped: servers through the API first, then any process still holding
a recorded pid of that LABWORK_HOME is killed with its kernels.
"""
from __future__ import annotations

import json
import signal
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import websocket  # websocket-client, jupyter_server's own dependency

from tests.support.control_plane import ControlPlane


NOTEBOOK_ENV = {"LABWORK_DEADLINE_CHECK_S": "0.5", "LABWORK_LOGS_KEPT_PER_PROJECT": "3",
                "LABWORK_JUPYTER_START_TIMEOUT_S": "90"}


def notebook_plane(home: Path) -> ControlPlane:
    """The notebooks tests' variant (not started): deadline checks every half second, 3 logs kept."""
    return ControlPlane(home, env=NOTEBOOK_ENV)


def jupyter(server: dict[str, Any]) -> httpx.Client:
    """A client for a started Jupyter server's REST API, with its token."""
    return httpx.Client(base_url=server["base_url"], headers={"Authorization": f"token {server['token']}"},
                        timeout=30)


def send_cell(ws: Any, code: str) -> str:
    """Send `code` as a notebook's execute_request on an open kernel websocket; its msg_id."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    return msg_id


def execute_result(ws: Any, code: str) -> str:
    """Run `code` over an open kernel websocket and return its execute_result's text/plain."""
    msg_id = send_cell(ws, code)
    while True:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg.get("msg_type") == "execute_result":
            return msg["content"]["data"]["text/plain"]
        if msg.get("msg_type") == "error":
            raise AssertionError(f"the cell failed: {msg['content'].get('evalue')}")


def run_and_leave(server: dict[str, Any], kernel_id: str, code: str) -> None:
    """Send `code` to the kernel over Jupyter's websocket as a notebook does, wait until the kernel
    says it is busy, and close the connection: the cell runs on with no client connected."""
    ws = websocket.create_connection(
        f"{server['base_url'].replace('http', 'ws', 1)}/api/kernels/{kernel_id}/channels",
        header=[f"Authorization: token {server['token']}"], timeout=60)
    try:
        msg_id = send_cell(ws, code)
        while True:
            msg = json.loads(ws.recv())
            if (msg.get("msg_type") == "status" and msg.get("parent_header", {}).get("msg_id") == msg_id
                    and msg["content"].get("execution_state") == "busy"):
                return
    finally:
        ws.close()


def server_pids(home: Path) -> list[tuple[int, int]]:
    """(pid, port) of every server row of this home's SQLite store."""
    db = home / "labwork.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return [(pid, port) for pid, port in conn.execute("SELECT pid, port FROM servers WHERE pid IS NOT NULL")]


def kill_servers(home: Path) -> None:
    """Kill (with their kernels) the Jupyter servers started for `home` that still run."""
    for pid, port in server_pids(home):
        try:
            proc = psutil.Process(pid)
            if f"--ServerApp.port={port}" not in proc.cmdline():
                continue  # the pid was reused by something else
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=10)


def stop_everything(cp: ControlPlane) -> None:
    """Stop the plane's Jupyter servers through its API, the plane itself, then kill leftovers."""
    if cp.proc is not None and cp.proc.poll() is None:
        try:
            with cp.client() as c:
                for server in c.get("/api/servers").json():
                    pid = (server.get("project") or {}).get("id")
                    if pid is not None:
                        c.delete(f"/api/projects/{pid}/server", timeout=60)
        except Exception:  # noqa: BLE001 - best effort before the hard kill below
            pass
    cp.stop()
    kill_servers(cp.home)
