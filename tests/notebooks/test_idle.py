"""Idle shutdown that counts real work (issue 13), with real Jupyter servers and kernels on a real
control plane: a kernel busy in `time.sleep` with no client connected keeps its server past the
idle timeout, while an idle server is stopped with the reason; jupyter_server's own culling removes
an idle kernel (never the busy one); a kernel busy past the ceiling is reported; bad idle timeouts
are refused naming the field (CLI and API)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support import ControlPlane, wait_for
from tests.support.browser import login, shot
from tests.support.jupyter import NOTEBOOK_ENV, jupyter, run_and_leave, stop_everything

# Seconds instead of hours: Jupyter culls idle kernels after 20 s (looking every second; Jupyter
# culls a kernel still starting too, and one may take several seconds to start on a loaded
# machine), a kernel busy for 3 s is "busy too long"; the servers below stop when idle for IDLE.
IDLE_ENV = NOTEBOOK_ENV | {"LABWORK_IDLE__CULL_KERNELS_AFTER": "20s", "LABWORK_IDLE__CULL_INTERVAL": "1s",
                           "LABWORK_IDLE__BUSY_CEILING": "3s"}
IDLE = "15s"
UNTRACKED = {"no_track_activity": "1"}  # the test's own looks never count as activity


@pytest.fixture(scope="module")
def idle_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("idle-home"), env=IDLE_ENV).start()
    yield cp
    stop_everything(cp)


def _start(cp: ControlPlane, project: dict[str, Any], **config: Any) -> dict[str, Any]:
    with cp.client() as api:
        r = api.post(f"/api/projects/{project['id']}/server", json={"hours": 1, **config})
        assert r.status_code == 201, r.text
        return r.json()


def _status(cp: ControlPlane, project: dict[str, Any]) -> dict[str, Any]:
    return cp.request("GET", f"/api/projects/{project['id']}/server")


def _kernels(server: dict[str, Any]) -> dict[str, dict[str, Any]]:
    with jupyter(server) as jup:
        return {k["id"]: k for k in jup.get("/api/kernels", params=UNTRACKED).json()}


@pytest.mark.slow
def test_a_busy_kernel_with_no_client_is_work_an_idle_server_stops(idle_cp: ControlPlane, tmp_path: Path,
                                                                    page) -> None:
    busy_project = idle_cp.make_project(tmp_path / "busy", "busy")
    idle_project = idle_cp.make_project(tmp_path / "idle", "idle")
    busy = _start(idle_cp, busy_project, idle=IDLE)
    assert busy["config"]["idle"] == 15.0
    with jupyter(busy) as jup:
        sleeper = jup.post("/api/kernels", json={"name": "python3"}).json()["id"]
        run_and_leave(busy, sleeper, "import time\ntime.sleep(900)")
        idler = jup.post("/api/kernels", json={"name": "python3"}).json()["id"]

    # jupyter_server's culling (cull_idle_timeout 20 s, cull_busy off) removes the idle kernel only
    kernels = wait_for(lambda: (k := _kernels(busy)) and idler not in k and k, timeout=60,
                       what="the idle kernel to be culled")
    assert kernels[sleeper]["execution_state"] == "busy" and kernels[sleeper]["connections"] == 0

    # a server that is idle from its start stops after the timeout, with the reason
    idle = _start(idle_cp, idle_project, idle=IDLE)
    stopped = wait_for(lambda: (s := _status(idle_cp, idle_project))["state"] == "stopped" and s,
                       timeout=120, what="the idle server to stop")
    assert stopped["stop_reason"] == "idle for 15 s"
    log = Path(idle["log_path"]).read_text()
    assert "stops when idle for 15 s" in log and "stopping the server: idle for 15 s" in log
    assert "idle since" in log

    # meanwhile the busy one, started earlier and untouched since, runs on: busy is work
    status = _status(idle_cp, busy_project)
    assert status["state"] == "running"
    assert status["idle"]["busy_kernels"] == 1 and status["idle"]["stop_at"] is None
    assert _kernels(busy)[sleeper]["execution_state"] == "busy"  # never culled
    # ... and the kernel busy past the ceiling (3 s here) is reported: status, log, CLI
    [long] = status["idle"]["long_busy"]
    assert long["id"] == sleeper and long["busy_s"] >= 3
    assert f"kernel {sleeper} (python3) has been busy for more than 3 s" in Path(busy["log_path"]).read_text()
    out = idle_cp.cli("notebook", "status", busy_project["path"]).stdout
    assert "not idle: 1 kernel(s) busy" in out and f"kernel {sleeper} (python3) busy for" in out
    with jupyter(busy) as jup:  # JupyterLab hears it from labwork's extension: the idle state, the notice
        state = jup.get("/labwork/lifecycle", params=UNTRACKED).json()
    assert state["idle"] == {"timeout_s": 15.0, "stop_at": None}
    assert state["notice"]["kind"] == "busy" and sleeper in state["notice"]["text"]
    login(page, idle_cp, f"/projects/{busy_project['id']}/jupyter")  # the dashboard's Jupyter page
    expect(page.locator("#idle-state")).to_contain_text("not idle (1 kernel(s) busy)")
    expect(page.locator(f".long-busy[data-kernel='{sleeper}']")).to_contain_text("labwork does not stop a busy kernel")
    shot(page, "jupyter-long-busy-kernel")

    # once the cell is interrupted nothing runs: that server stops when idle too
    with jupyter(busy) as jup:
        jup.post(f"/api/kernels/{sleeper}/interrupt").raise_for_status()
    stopped = wait_for(lambda: (s := _status(idle_cp, busy_project))["state"] == "stopped" and s,
                       timeout=120, what="the formerly busy server to stop")
    assert stopped["stop_reason"] == "idle for 15 s"


def test_bad_idle_values_are_refused_naming_the_field(idle_cp: ControlPlane, tmp_path: Path) -> None:
    project = idle_cp.make_project(tmp_path / "bad", "bad")
    for value in ("soon", "60", "-5m", "0s"):
        proc = idle_cp.cli("notebook", "start", project["path"], "--idle", value, "--no-browser", check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --idle: expected a duration with its unit"), lines
    with idle_cp.client() as api:
        for value in ("soon", "60", -5, 0, True, "31d"):
            r = api.post(f"/api/projects/{project['id']}/server", json={"idle": value})
            assert r.status_code == 400, r.text
            error = r.json()
            assert error["details"]["key"] == "idle" and "'idle'" in error["msg"], error
    assert _status(idle_cp, project)["state"] == "none"  # nothing was started
