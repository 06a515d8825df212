"""A run outlives a control-plane restart (as Jupyter servers do): the plane that comes back
watches it to its end and records its outcome once."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs.conftest import code_cell, write_notebook
from tests.support import ControlPlane, wait_for

pytestmark = pytest.mark.slow


def test_a_running_job_is_adopted_after_a_restart(own_cp: ControlPlane, tmp_path: Path) -> None:
    project = own_cp.make_project(tmp_path / "adopt", "adoptProj")
    root = Path(project["path"])
    gate = root / "go"
    write_notebook(root / "gated.ipynb", code_cell("print('waiting', flush=True)"),
                   code_cell(f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.2)\n"
                             "print('through the gate')"))
    own_cp.request("POST", f"/api/projects/{project['id']}/jobs", json={"name": "gated", "notebook": "gated.ipynb"})
    run = own_cp.request("POST", f"/api/projects/{project['id']}/jobs/gated/runs", json={})
    path = f"/api/projects/{project['id']}/jobs/runs/{run['id']}"
    wait_for(lambda: "waiting" in own_cp.request("GET", f"{path}/logs")["text"], timeout=120, what="the first cell")
    own_cp.stop()
    own_cp.start()
    assert own_cp.request("GET", path)["status"] == "running"  # it went on while no control plane ran
    gate.write_text("")
    ended = wait_for(lambda: (lambda r: r if r["status"] not in ("queued", "starting", "running") else None)(
        own_cp.request("GET", path)), timeout=120, what="the adopted run to end")
    assert ended["status"] == "completed", ended
    log = own_cp.request("GET", f"{path}/logs")["text"]
    assert "re-adopted by the control plane" in log and "through the gate" in log
    assert len(own_cp.request("GET", f"/api/projects/{project['id']}/jobs/gated/runs")) == 1
