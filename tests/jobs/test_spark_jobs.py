"""Jobs on Spark run configurations: PySpark in the kernel, and sparkmagic through the control
plane's own Livy gateway, each with a typed parameter and the job's Spark configuration."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from labwork.project import attach_target
from tests.jobs.conftest import code_cell, write_notebook
from tests.support import ControlPlane, wait_for

pytestmark = pytest.mark.slow
SPARK = {"kind": "spark", "spark": {"driver_memory": "512m", "executor_memory": "512m",
                                    "properties": {"spark.sql.shuffle.partitions": "3"}}}


def _run(cp: ControlPlane, pid: int, name: str, params: dict) -> dict:
    run = cp.request("POST", f"/api/projects/{pid}/jobs/{name}/runs", json={"parameters": params})
    return wait_for(lambda: (lambda r: r if r["status"] in ("completed", "failed", "cancelled") else None)(
        cp.request("GET", f"/api/projects/{pid}/jobs/runs/{run['id']}")), timeout=400, interval=1,
        what=f"the {name} run to end")


def _text(cp: ControlPlane, pid: int, run_id: int) -> str:
    with cp.client() as c:
        nb = c.get(f"/api/projects/{pid}/jobs/runs/{run_id}/output").json()
    return json.dumps([c.get("outputs", []) for c in nb["cells"]])


def test_a_pyspark_job_with_the_spark_configuration(cp: ControlPlane, project: dict) -> None:
    root = Path(project["path"])
    attach_target(root, "spark", "sp", {"master": "local[2]"})
    write_notebook(root / "count.ipynb", code_cell("n = 1", ["parameters"]),
                   code_cell("print('count', spark.range(n).count(), spark.conf.get('spark.sql.shuffle.partitions'))"))
    cp.request("POST", f"/api/projects/{project['id']}/jobs",
               json={"name": "count", "notebook": "count.ipynb", "runconfig": "sp", "config": SPARK})
    run = _run(cp, project["id"], "count", {"n": 7})
    assert run["status"] == "completed", run
    assert "count 7 3" in _text(cp, project["id"], run["id"])


def test_a_sparkmagic_job_through_the_gateway(cp: ControlPlane, project: dict) -> None:
    root = Path(project["path"])
    attach_target(root, "spark", "lv", {"via": "livy"})
    write_notebook(root / "remote.ipynb", code_cell("n = 1", ["parameters"]),
                   code_cell("print('remote', spark.range(n).count())"),
                   code_cell("print('tagged', spark.sparkContext.getConf().get('spark.labwork.run'))"))
    cp.request("POST", f"/api/projects/{project['id']}/jobs",
               json={"name": "remote", "notebook": "remote.ipynb", "runconfig": "lv", "config": SPARK})
    run = _run(cp, project["id"], "remote", {"n": 5})
    assert run["status"] == "completed", run
    assert "remote 5" in _text(cp, project["id"], run["id"])
    # run history is on for jobs: the statements were recorded through the gateway
    def recorded() -> list:
        runs = cp.request("GET", "/api/runs", params={"limit": 1000})["runs"]
        return [r for r in runs if r.get("project_dir") == str(root) and r["entry_count"] >= 2]
    assert wait_for(recorded, timeout=60, what="the job's statements in run history")
    # the run's page links to that run history, and the link leads to the run with the statements
    with cp.client() as c:
        page = wait_for(lambda: (lambda t: t if 'id="run-history-link"' in t else None)(
            c.get(f"/projects/{project['id']}/jobs/runs/{run['id']}").text), timeout=60,
            what="the run page's link to its run history")
        href = re.search(r'<a href="(/runs/[^"]+)" id="run-history-link"', page).group(1)
        history_id = unquote(href.removeprefix("/runs/"))
        linked = c.get(href)
        assert linked.status_code == 200 and "spark.range(n).count()" in linked.text
    history = cp.request("GET", f"/api/runs/{history_id}")
    assert history["project_dir"] == str(root) and history["notebook"] == "remote.ipynb"
    codes = [e["code"] or "" for e in history["entries"]]
    assert any("n = 5" in code for code in codes), codes  # papermill's injected parameters
    assert any("print('remote', spark.range(n).count())" in code for code in codes), codes
    assert [e["status"] for e in history["entries"]] == ["ok"] * len(codes)
    assert cp.request("GET", f"/api/projects/{project['id']}/jobs/runs/{run['id']}")["history_run"] == history_id
    # the same run the job's Livy session was tagged with (read inside the session's driver)
    assert f"tagged {history_id}" in _text(cp, project["id"], run["id"])
    # the kernel's session ended with the run (sparkmagic deletes it at shutdown)
    def gone() -> bool:
        sessions = cp.request("GET", "/livy/sessions")["sessions"]
        return not [s for s in sessions if (s.get("conf") or {}).get("spark.labwork.project") == str(root)
                    and s["state"] not in ("dead", "killed", "success", "error")]
    wait_for(gone, timeout=60, what="the job's Spark session to end")
