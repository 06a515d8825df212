"""The manager: deleting a project's Spark sessions on stop, exit codes, a start that fails."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from labwork.errors import Unavailable
from labwork.notebooks.manager import ServerManager
from labwork.project import init_project
from labwork.settings import load_settings
from labwork.store.db import Store
from tests.support import wait_for
from tests.support.jupyter import kill_servers


@pytest.fixture
def manager(tmp_path: Path):
    home = tmp_path / "home"
    settings = load_settings(flags={"home": home, "jupyter_start_timeout_s": 60}, environ={})
    store = Store(settings.db_url)
    yield ServerManager(settings, store, url="http://127.0.0.1:1")
    kill_servers(home)
    store.dispose()


@pytest.mark.slow
def test_stopping_a_server_deletes_its_spark_sessions(nb_cp, make_project) -> None:
    """End to end, nothing stood in: a project's server on a real control plane, a Spark session
    on its real gateway tagged with the project (as the project's sparkmagic kernels tag theirs)
    and one of another project; stopping the server deletes the first one only."""
    import httpx
    project = make_project("gwclean")
    livy = httpx.Client(base_url=nb_cp.url + "/livy", headers=nb_cp.headers() | {"X-Requested-By": "t"},
                        timeout=180)
    with nb_cp.client() as api, livy:
        assert api.post(f"/api/projects/{project['id']}/server", json={"hours": 1}).status_code in (200, 201)
        small = {"kind": "pyspark", "driverMemory": "512m"}
        mine = livy.post("/sessions", json=small | {"conf": {"spark.labwork.project": project["path"]}}).json()
        other = livy.post("/sessions", json=small | {"conf": {"spark.labwork.project": project["path"] + "x"}}).json()
        try:
            status = api.delete(f"/api/projects/{project['id']}/server").json()
            assert livy.get(f"/sessions/{mine['id']}").status_code == 404
            assert livy.get(f"/sessions/{other['id']}").status_code == 200
            assert "deleted 1 Spark session(s) of admin in the project" in Path(status["log_path"]).read_text()
        finally:
            livy.delete(f"/sessions/{other['id']}")


def test_a_killed_server_records_its_exit_code(manager: ServerManager, tmp_path: Path) -> None:
    root = init_project(tmp_path / "k", "k").root
    server = manager.start(str(root), {"hours": 1})
    os.kill(server["pid"], signal.SIGKILL)

    def checked() -> dict | None:
        manager.check()
        status = manager.status(str(root))
        return status if status["state"] == "stopped" else None

    status = wait_for(checked, timeout=30)
    assert "exited unexpectedly (exit code -9)" in status["stop_reason"]


def test_a_server_that_cannot_start_fails_with_its_log(manager: ServerManager, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = init_project(tmp_path / "f", "f").root
    # a Jupyter that refuses an unknown option: what a broken Jupyter installation looks like
    monkeypatch.setattr(manager, "_command", lambda ui, port, r, base="": [
        sys.executable, "-c", "import sys; print('jupyter: broken installation', flush=True); sys.exit(3)"])
    with pytest.raises(Unavailable) as info:
        manager.start(str(root), {"hours": 1})
    assert "exited with code 3" in str(info.value) and "broken installation" in str(info.value)
    status = manager.status(str(root))
    assert status["state"] == "failed" and "did not start" in status["stop_reason"]
