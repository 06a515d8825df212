"""A run configuration on `spark` with `via = "livy"` gives a sparkmagic kernel that runs through
the control plane's own gateway (/livy); its sessions carry the project, run configuration and
notebook, and stopping the project's server deletes them."""
from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from labwork.kernels.specmanager import LabworkKernelSpecManager
from labwork.project import attach_target, init_project
from tests.support import ControlPlane
from tests.kernels.test_kernels import run


@pytest.mark.slow
def test_sparkmagic_kernel_through_the_gateway(control_plane: ControlPlane, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = init_project(tmp_path / "sm", "smProj").root
    attach_target(root, "spark", "lv", {"via": "livy"})
    rc = root / ".labwork" / "runconfig" / "lv.toml"
    rc.write_text(rc.read_text() + "history = true\n")  # statements become run-history entries
    monkeypatch.setenv("LABWORK_HOME", str(control_plane.home))
    monkeypatch.setenv("LABWORK_PROJECT_DIR", str(root))
    monkeypatch.setenv("LABWORK_URL", control_plane.url)
    # what a labwork Jupyter server gives its kernels: the starting user's personal token
    monkeypatch.setenv("LABWORK_TOKEN", control_plane.cli("token", "create").stdout.strip())
    monkeypatch.setenv("JPY_SESSION_NAME", str(root / "analysis.ipynb"))
    server_config = {"kind": "spark", "spark": {"driver_memory": "512m", "executor_memory": "512m",
                                                "properties": {"spark.sql.shuffle.partitions": "2"}}}
    monkeypatch.setenv("LABWORK_SERVER_CONFIG", json.dumps(server_config))

    ksm = LabworkKernelSpecManager()
    spec = ksm.get_kernel_spec("labwork-lv")
    assert spec.display_name == "smProj lv" and spec.language == "python"
    config = json.loads((Path(spec.env["SPARKMAGIC_CONF_DIR"]) / "config.json").read_text())
    assert config["kernel_python_credentials"]["url"] == control_plane.url + "/livy"
    assert config["session_configs"]["driverMemory"] == "512m"
    assert config["session_configs"]["conf"]["spark.hadoop.fs.permissions.umask-mode"] == "007"
    assert oct(os.stat(Path(spec.env["SPARKMAGIC_CONF_DIR"]) / "config.json").st_mode & 0o777) == "0o600"

    out = run(ksm, "labwork-lv", "print(spark.range(7).count(), spark.conf.get('spark.sql.shuffle.partitions'))",
              timeout=300)
    assert out["status"] == "ok", out
    assert "7 2" in out["stdout"] + json.dumps(out["data"])

    with control_plane.client() as c:
        sessions = c.get("/livy/sessions").json()["sessions"]
    ours = [s for s in sessions if (s.get("conf") or {}).get("spark.labwork.project") == str(root)]
    assert ours, sessions  # the kernel was killed, so its session is still there
    conf = ours[0]["conf"]
    assert (conf["spark.labwork.runconfig"], conf["spark.labwork.notebook"]) == ("lv", "analysis.ipynb")
    # run history of these kernels: tests/kernels/test_sparkmagic_history.py
    from labwork.gateway.sparkmagic_kernels import delete_project_sessions
    assert delete_project_sessions(control_plane.url + "/livy", control_plane.headers(), str(root)) >= 1


@pytest.mark.slow
def test_delete_project_sessions(control_plane: ControlPlane, tmp_path: Path) -> None:
    from labwork.gateway.sparkmagic_kernels import delete_project_sessions
    headers = control_plane.headers() | {"X-Requested-By": "test"}
    root = str(tmp_path / "p")
    with httpx.Client(base_url=control_plane.url + "/livy", headers=headers, timeout=120) as c:
        mine = c.post("/sessions", json={"kind": "pyspark", "conf": {"spark.labwork.project": root,
                                                                     "spark.driver.memory": "512m"}}).json()
        other = c.post("/sessions", json={"kind": "pyspark", "conf": {"spark.labwork.project": root + "x",
                                                                      "spark.driver.memory": "512m"}}).json()
        try:
            assert delete_project_sessions(control_plane.url + "/livy", control_plane.headers(), root) == 1
            assert c.get(f"/sessions/{mine['id']}").status_code == 404
            assert c.get(f"/sessions/{other['id']}").status_code == 200
        finally:
            c.delete(f"/sessions/{other['id']}")


@pytest.mark.slow
def test_sparkmagic_kernel_moves_sql_results_as_arrow_through_the_control_plane(
        control_plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mounted /livy (the control plane's token as sparkmagic's Basic password, its access
    check) advertises Arrow, so the launcher's Arrow magics are on: a cut result says so."""
    root = init_project(tmp_path / "ar", "arProj").root
    attach_target(root, "spark", "lv", {"via": "livy"})
    monkeypatch.setenv("LABWORK_HOME", str(control_plane.home))
    monkeypatch.setenv("LABWORK_PROJECT_DIR", str(root))
    monkeypatch.setenv("LABWORK_URL", control_plane.url)
    # what a labwork Jupyter server gives its kernels: the starting user's personal token
    monkeypatch.setenv("LABWORK_TOKEN", control_plane.cli("token", "create").stdout.strip())
    monkeypatch.setenv("LABWORK_SERVER_CONFIG", json.dumps(
        {"kind": "spark", "spark": {"driver_memory": "512m", "executor_memory": "512m"}}))
    with control_plane.client() as c:
        assert c.get("/livy/version").json()["labwork"] == {"arrow": 1}
    from labwork.gateway.sparkmagic_kernels import delete_project_sessions
    try:
        out = run(LabworkKernelSpecManager(), "labwork-lv",
                  "%%sql -o df -n 3\nSELECT id, CONCAT('λ ', CAST(id AS STRING)) AS s FROM range(10)",
                  timeout=300)
        assert out["status"] == "ok", out
        assert "showing 3 of 10 rows (-n to change)" in out["stdout"], out
    finally:
        delete_project_sessions(control_plane.url + "/livy", control_plane.headers(), str(root))
