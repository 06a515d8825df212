"""Fixtures for the Jupyter-server tests: a real control plane (fast deadline checks) and projects.

Everything started here is stopped here: servers through the API, then any process still holding
a recorded pid of this LABWORK_HOME is killed.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import ControlPlane


class NotebookControlPlane(ControlPlane):
    """A control plane whose deadline loop runs every half second."""

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABWORK_")}
        env.update(LABWORK_HOME=str(self.home), LABWORK_DEADLINE_CHECK_S="0.5",
                   LABWORK_LOGS_KEPT_PER_PROJECT="3", LABWORK_JUPYTER_START_TIMEOUT_S="90")
        env.pop("DISPLAY", None)  # never open a browser from the tests
        env.pop("WAYLAND_DISPLAY", None)
        return env

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers_for(), timeout=180)

    def register(self, folder: Path) -> dict[str, Any]:
        with self.api() as c:
            r = c.post("/api/projects", json={"path": str(folder)})
            r.raise_for_status()
            return r.json()


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


def stop_everything(cp: NotebookControlPlane) -> None:
    if cp.proc is not None and cp.proc.poll() is None:
        try:
            with cp.api() as c:
                for server in c.get("/api/servers").json():
                    c.delete(f"/api/projects/{server['project']['id']}/server")
        except Exception:  # noqa: BLE001 - best effort before the hard kill below
            pass
    cp.stop()
    kill_servers(cp.home)


@pytest.fixture(scope="session")
def nb_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotebookControlPlane]:
    cp = NotebookControlPlane(tmp_path_factory.mktemp("nb-home")).start()
    yield cp
    stop_everything(cp)


@pytest.fixture(scope="session")
def make_project(nb_cp: NotebookControlPlane, tmp_path_factory: pytest.TempPathFactory
                 ) -> Callable[..., dict[str, Any]]:
    """A fresh registered project (its own folder) for each call."""
    from labwork.project import init_project

    counter = iter(range(1, 10_000))

    def make(name: str | None = None) -> dict[str, Any]:
        name = name or f"proj{next(counter)}"
        root = tmp_path_factory.mktemp("projects") / name
        init_project(root, name)
        return nb_cp.register(root)

    return make


@pytest.fixture(scope="session")
def api(nb_cp: NotebookControlPlane) -> Iterator[httpx.Client]:
    with nb_cp.api() as client:
        yield client


def jupyter(server: dict[str, Any]) -> httpx.Client:
    """A client for a started Jupyter server's REST API, with its token."""
    return httpx.Client(base_url=server["base_url"], headers={"Authorization": f"token {server['token']}"},
                        timeout=30)


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.25) -> Any:
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
