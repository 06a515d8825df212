"""The Spark UI of a PySpark-in-kernel driver and of a gateway driver listens on 127.0.0.1 like the
driver itself (issue 8 item 6), even when the user's shell exports SPARK_LOCAL_IP=0.0.0.0: Spark 4's
UI follows SPARK_LOCAL_IP only. Checked on the real listening socket with psutil."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labwork.kernels.specmanager import LabworkKernelSpecManager
from labwork.project import attach_target, init_project
from tests.support import ControlPlane
from tests.kernels.test_kernels import run

# Runs inside the driver's Python: the addresses the JVM's UI port listens on.
PROBE = ("import json, psutil\n"
         "port = int(sc.uiWebUrl.rsplit(':', 1)[1])\n"
         "jvms = [p for p in psutil.Process().children(recursive=True) if 'java' in p.name()]\n"
         "print(json.dumps(sorted({c.laddr.ip for p in jvms for c in p.net_connections('tcp')\n"
         "                         if c.status == 'LISTEN' and c.laddr.port == port})))\n")


@pytest.fixture(scope="module")
def open_shell_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    mp = pytest.MonkeyPatch()
    mp.setenv("SPARK_LOCAL_IP", "0.0.0.0")
    home = tmp_path_factory.mktemp("ui-home")
    (home / "config.toml").write_text('[gateway]\nmaster = "local[1]"\ndriver_memory = "512m"\n')
    cp = ControlPlane(home).start()
    yield cp
    cp.stop()
    mp.undo()


def _loopback_only(addresses: list[str]) -> bool:
    return bool(addresses) and all(a in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for a in addresses)


@pytest.mark.slow
def test_kernel_spark_ui_listens_on_loopback(open_shell_cp: ControlPlane, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = init_project(tmp_path / "ui", "uiProj").root
    monkeypatch.setenv("LABWORK_HOME", str(open_shell_cp.home))
    monkeypatch.setenv("LABWORK_URL", open_shell_cp.url)
    monkeypatch.setenv("LABWORK_PROJECT_DIR", str(root))
    monkeypatch.setenv("SPARK_LOCAL_IP", "0.0.0.0")
    attach_target(root, "spark", "sp", {"master": "local[1]"})
    rc = root / ".labwork" / "runconfig" / "sp.toml"
    rc.write_text(rc.read_text() + '\n[spark]\n"spark.driver.memory" = "512m"\n')
    out = run(LabworkKernelSpecManager(), "labwork-sp", PROBE)
    assert out["status"] == "ok", out
    addresses = json.loads(out["stdout"].strip().splitlines()[-1])
    assert _loopback_only(addresses), addresses


@pytest.mark.slow
def test_gateway_driver_spark_ui_listens_on_loopback(open_shell_cp: ControlPlane) -> None:
    with open_shell_cp.client() as http:
        headers = {"X-Requested-By": "test"}
        r = http.post("/livy/sessions", json={"kind": "pyspark"}, headers=headers)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        try:
            for _ in range(600):
                state = http.get(f"/livy/sessions/{sid}/state", headers=headers).json()["state"]
                if state not in ("not_started", "starting"):
                    break
                time.sleep(0.2)
            assert state == "idle", state
            st = http.post(f"/livy/sessions/{sid}/statements", json={"code": PROBE}, headers=headers).json()
            for _ in range(600):
                st = http.get(f"/livy/sessions/{sid}/statements/{st['id']}", headers=headers).json()
                if st["state"] in ("available", "error", "cancelled"):
                    break
                time.sleep(0.2)
            assert st["output"]["status"] == "ok", st
            addresses = json.loads(st["output"]["data"]["text/plain"].strip().splitlines()[-1])
            assert _loopback_only(addresses), addresses
        finally:
            http.delete(f"/livy/sessions/{sid}", headers=headers)
