"""Run history of a labwork sparkmagic kernel, with the real sparkmagic kernel and the real gateway:
the user's cells (not sparkmagic's generated code) in one run per kernel, under the project's name,
`%labwork` preloaded, and the run ended when the session is deleted or the kernel shuts down."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from jupyter_client import KernelManager

from labwork.kernels.specmanager import LabworkKernelSpecManager
from labwork.project import attach_target, init_project
from tests.support import ControlPlane


def _wait(predicate, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"gave up waiting for {what}; last: {last!r}")


def _execute(kc, code: str, timeout: float = 300) -> dict:
    out = {"text": ""}

    def hook(msg: dict) -> None:
        c = msg["content"]
        if msg["msg_type"] == "stream":
            out["text"] += c["text"]
        elif msg["msg_type"] in ("execute_result", "display_data"):
            out["text"] += c["data"].get("text/plain", "")
        elif msg["msg_type"] == "error":
            out["text"] += f"{c['ename']}: {c['evalue']}"
    out["status"] = kc.execute_interactive(code, timeout=timeout, output_hook=hook)["content"]["status"]
    return out


CELLS = ["%%local\n%labwork status",                       # preloaded: works in %%local
         "spark.range(7).count()",
         "%%sql\nSELECT 1 AS one",                         # sparkmagic sends generated code for this
         "1/0",
         "%%local\n%labwork history off",
         "spark.range(3).count()"]                          # history off: not recorded


@pytest.mark.slow
def test_sparkmagic_cells_are_recorded_as_written(control_plane: ControlPlane, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = init_project(tmp_path / "irisfolder", "myIris").root  # folder name and project name differ
    attach_target(root, "spark", "lv", {"via": "livy"})
    rc = root / ".labwork" / "runconfig" / "lv.toml"
    rc.write_text(rc.read_text() + "history = true\n")
    for key, value in {"LABWORK_HOME": str(control_plane.home), "LABWORK_PROJECT_DIR": str(root),
                       "LABWORK_URL": control_plane.url, "JPY_SESSION_NAME": str(root / "sm.ipynb"),
                       # what a labwork Jupyter server gives its kernels: the user's personal token
                       "LABWORK_TOKEN": control_plane.cli("token", "create").stdout.strip(),
                       "LABWORK_HISTORY__FLUSH_INTERVAL_S": "0.05",
                       "LABWORK_SERVER_CONFIG": json.dumps({"kind": "spark", "spark": {
                           "driver_memory": "512m", "properties": {"spark.sql.shuffle.partitions": "2"}}})}.items():
        monkeypatch.setenv(key, value)
    ksm = LabworkKernelSpecManager()
    km = KernelManager(kernel_spec_manager=ksm, kernel_name="labwork-lv")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    livy = httpx.Client(base_url=control_plane.url + "/livy", headers=control_plane.headers()
                        | {"X-Requested-By": "t"}, timeout=60)
    try:
        kc.wait_for_ready(timeout=120)
        results = [_execute(kc, code) for code in CELLS]
        assert "run:" in results[0]["text"] and "history:    on" in results[0]["text"], results[0]
        assert "7" in results[1]["text"] and results[2]["status"] == "ok", results
        assert "ZeroDivisionError" in results[3]["text"]

        def the_run():
            with control_plane.client() as c:
                runs = c.get("/api/runs", params={"notebook": "sm.ipynb"}).json()["runs"]
                return c.get(f"/api/runs/{runs[0]['id']}").json() if len(runs) == 1 and \
                    runs[0]["entry_count"] == 5 else None
        run = _wait(the_run, what="the kernel's run with 5 entries")
        assert [e["code"] for e in run["entries"]] == CELLS[:5]
        assert [e["status"] for e in run["entries"]] == ["ok", "ok", "ok", "error", "ok"]
        assert run["entries"][3]["error_name"] == "ZeroDivisionError"
        assert run["project"] == "myIris" and run["source"] == "kernel" and run["runconfig"] == "lv"
        listed = control_plane.cli("run", "list", "--project", "myIris", "--json").stdout
        assert run["id"] in listed

        # the notebook's session is deleted (the dashboard's Stop, another client): its run ends
        sessions = livy.get("/sessions").json()["sessions"]
        mine = [s for s in sessions if (s.get("conf") or {}).get("spark.labwork.run") == run["id"]]
        assert len(mine) == 1, [s.get("conf") for s in sessions]
        session = mine[0]
        assert livy.delete(f"/sessions/{session['id']}").status_code == 200
        with control_plane.client() as c:
            ended = _wait(lambda: (r := c.get(f"/api/runs/{run['id']}").json())["status"] != "running" and r,
                          what="the run to end")
        assert ended["status"] == "completed"  # its last entry was ok
        assert "was deleted" in ended["info"]["end_reason"]
    finally:
        livy.close()
        kc.stop_channels()
        km.shutdown_kernel(now=False)
