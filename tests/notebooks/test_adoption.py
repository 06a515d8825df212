"""Servers outlive the control plane: after SIGKILL and restart, running servers are re-adopted and
servers that died meanwhile are marked stopped with what is known."""
from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from labwork.project import init_project
from labwork.processes import pid_alive
from tests.support import ControlPlane, wait_for
from tests.support.jupyter import jupyter, notebook_plane, stop_everything


@pytest.fixture
def own_cp(tmp_path: Path) -> Iterator[ControlPlane]:
    cp = notebook_plane(tmp_path / "home").start()
    yield cp
    stop_everything(cp)


def test_sigkill_then_restart_adopts_and_marks_dead(own_cp: ControlPlane, tmp_path: Path) -> None:
    alive_project = own_cp.register(init_project(tmp_path / "alive", "alive").root)
    dead_project = own_cp.register(init_project(tmp_path / "dead", "dead").root)
    with own_cp.client() as api:
        alive = api.post(f"/api/projects/{alive_project['id']}/server", json={"hours": 5}).json()
        dead = api.post(f"/api/projects/{dead_project['id']}/server", json={"hours": 5}).json()
        assert alive["state"] == dead["state"] == "running"

    own_cp.stop(signal.SIGKILL)
    assert pid_alive(alive["pid"]) and pid_alive(dead["pid"])  # the servers outlive the control plane
    with jupyter(alive) as j:
        assert j.get("/api/status").status_code == 200
    proc = psutil.Process(dead["pid"])  # a server that dies while no control plane watches
    proc.kill()
    proc.wait(10)

    own_cp.start()
    with own_cp.client() as api:
        status = api.get(f"/api/projects/{alive_project['id']}/server").json()
        assert status["id"] == alive["id"] and status["state"] == "running"
        assert status["pid"] == alive["pid"] and status["deadline"] == alive["deadline"]
        assert status["url"] == alive["url"]
        gone = api.get(f"/api/projects/{dead_project['id']}/server").json()
        assert gone["state"] == "stopped"
        assert "exited while the control plane was not running" in gone["stop_reason"]
        assert "exit code unknown" in gone["stop_reason"]
        assert gone["stopped"] is not None
        log = api.get(f"/api/projects/{alive_project['id']}/server/logs").json()["text"]
        assert "re-adopted by the control plane" in log
        dead_log = api.get(f"/api/projects/{dead_project['id']}/server/logs").json()["text"]
        assert "Jupyter Server" in dead_log and "exited while the control plane was not running" in dead_log
        # the adopted server is managed as before: extend, stop
        extended = api.post(f"/api/projects/{alive_project['id']}/server/extend", json={"hours": 1}).json()
        assert extended["seconds_left"] > 5.5 * 3600
        assert [s["id"] for s in api.get("/api/servers").json()] == [alive["id"]]
        stopped = api.delete(f"/api/projects/{alive_project['id']}/server").json()
        assert stopped["state"] == "stopped"
    wait_for(lambda: not pid_alive(alive["pid"]), timeout=30)


def test_a_server_that_dies_under_a_running_control_plane_is_recorded(own_cp: ControlPlane,
                                                                      tmp_path: Path) -> None:
    project = own_cp.register(init_project(tmp_path / "p", "p").root)
    with own_cp.client() as api:
        server = api.post(f"/api/projects/{project['id']}/server", json={"hours": 5}).json()
        os.kill(server["pid"], signal.SIGKILL)
        status = wait_for(lambda: (s := api.get(f"/api/projects/{project['id']}/server").json())["state"]
                          == "stopped" and s, timeout=30)
        assert "exited unexpectedly" in status["stop_reason"] and "exit code -9" in status["stop_reason"]
        # a new start is possible right away
        again = api.post(f"/api/projects/{project['id']}/server", json={"hours": 1}).json()
        assert again["state"] == "running" and again["id"] != server["id"]


def test_a_dead_server_whose_docker_daemon_is_down_is_recorded_and_logged(own_cp: ControlPlane,
                                                                          tmp_path: Path) -> None:
    from labwork.project import attach_target
    root = init_project(tmp_path / "d", "d").root
    attach_target(root, "docker", "gone", {"docker_host": f"unix://{tmp_path}/no-daemon.sock"})
    project = own_cp.register(root)
    with own_cp.client() as api:
        server = api.post(f"/api/projects/{project['id']}/server", json={"hours": 5}).json()
        os.kill(server["pid"], signal.SIGKILL)
        status = wait_for(lambda: (s := api.get(f"/api/projects/{project['id']}/server").json())["state"]
                          == "stopped" and s, timeout=60)
    assert "exited unexpectedly" in status["stop_reason"]
    assert f"could not look for the kernels' containers on unix://{tmp_path}/no-daemon.sock" \
        in Path(status["log_path"]).read_text()


def test_control_plane_shutdown_leaves_servers_running(own_cp: ControlPlane, tmp_path: Path) -> None:
    project = own_cp.register(init_project(tmp_path / "q", "q").root)
    with own_cp.client() as api:
        server = api.post(f"/api/projects/{project['id']}/server", json={"hours": 5}).json()
    own_cp.stop(signal.SIGTERM)  # a clean control-plane shutdown stops the loop, not the servers
    assert pid_alive(server["pid"])
    with jupyter(server) as j:
        assert j.get("/api/status").status_code == 200
    own_cp.start()
    with own_cp.client() as api:
        assert api.get(f"/api/projects/{project['id']}/server").json()["state"] == "running"
