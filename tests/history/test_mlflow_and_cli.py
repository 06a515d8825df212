"""MLflow export read back with MlflowClient, and the `labwork run` commands against a real
control plane."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from labwork.errors import MissingExtra
from labwork.history import artifacts, ingestion
from labwork.history.mlflow_export import StoreSource, export_to_mlflow


def _fill(run: str, t0: float | None = None) -> list[dict]:
    t = t0 or time.time() - 60
    return [{"id": uuid.uuid4().hex, "type": "run", "run": run, "at": t, "project": "myIris",
             "project_dir": "/p/iris", "notebook": "iris.ipynb", "runconfig": "local", "kernel_id": "k-1"},
            {"id": f"{run[:8]}-e1", "type": "entry", "run": run, "seq": 1, "execution_count": 1,
             "code": "import sklearn\nacc = 0.9", "started": t + 1, "ended": t + 2.5, "status": "ok"},
            {"id": uuid.uuid4().hex, "type": "value", "run": run, "entry": f"{run[:8]}-e1", "name": "accuracy",
             "seq": 0, "value": [0.7, 0.8], "at": t + 2},
            {"id": uuid.uuid4().hex, "type": "value", "run": run, "entry": None, "name": "accuracy",
             "seq": 1, "value": 0.9, "at": t + 3},
            {"id": uuid.uuid4().hex, "type": "value", "run": run, "entry": None, "name": "model kind",
             "seq": 0, "value": "svc", "at": t + 3},
            {"id": f"{run[:8]}-e2", "type": "entry", "run": run, "seq": 2, "execution_count": 2,
             "code": "1/0", "started": t + 4, "ended": t + 4.1, "status": "error",
             "error_name": "ZeroDivisionError", "error_value": "division by zero", "traceback": "Traceback ..."},
            {"id": uuid.uuid4().hex, "type": "end", "run": run, "at": t + 5}]


def test_export_read_back_with_mlflow_client(tmp_path):
    from mlflow.tracking import MlflowClient

    from labwork.store.db import Store
    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    arts = tmp_path / "artifacts"
    run = uuid.uuid4().hex
    ingestion.ingest(store, _fill(run))
    artifacts.store_artifact(store, arts, run, "outputs/model.pkl", [b"pickled"], entry_id=f"{run[:8]}-e1")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    [result] = export_to_mlflow(StoreSource(store, arts), uri)
    assert result["entries"] == 2 and result["metrics"] == 3 and result["artifacts"] == 1

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("myIris")
    parent = client.get_run(result["mlflow_run_id"])
    tags = parent.data.tags
    assert tags["mlflow.source.type"] == "NOTEBOOK" and tags["mlflow.source.name"] == "iris.ipynb"
    assert tags["labwork.run_id"] == run and tags["labwork.runconfig"] == "local"
    assert parent.info.status == "FAILED"  # the last cell failed
    history = client.get_metric_history(parent.info.run_id, "accuracy")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.7), (1, 0.8), (2, 0.9)]
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "outputs")] == ["outputs/model.pkl"]
    local = client.download_artifacts(parent.info.run_id, "outputs/model.pkl", str(tmp_path / "dl"))
    assert Path(local).read_bytes() == b"pickled"
    text = client.download_artifacts(parent.info.run_id, "values/model kind.txt", str(tmp_path / "dl2"))
    assert Path(text).read_text() == "svc\n"

    children = client.search_runs([exp.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                                  order_by=["attributes.start_time ASC"])
    assert [c.info.status for c in children] == ["FINISHED", "FAILED"]
    assert children[1].data.tags["labwork.error_name"] == "ZeroDivisionError"
    assert children[0].data.metrics["duration_ms"] == pytest.approx(1500, abs=1)
    assert children[0].data.metrics["accuracy"] == 0.8  # the cell's own values, latest point
    assert children[0].info.end_time - children[0].info.start_time == 1500
    code = client.download_artifacts(children[0].info.run_id, "cell.py", str(tmp_path / "dl3"))
    assert Path(code).read_text() == "import sklearn\nacc = 0.9"

    # exporting again adds nothing
    [again] = export_to_mlflow(StoreSource(store, arts), uri, [run[:8]])
    assert again["skipped"] and again["mlflow_run_id"] == parent.info.run_id
    assert len(client.search_runs([exp.experiment_id])) == 3
    assert (tmp_path / "mlartifacts" / "myIris").is_dir()
    store.dispose()


def test_missing_mlflow_extra_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # as if labwork[mlflow] were not installed
    with pytest.raises(MissingExtra, match="mlflow") as err:
        export_to_mlflow(StoreSource(None, tmp_path), "file:///nowhere", ["x"])
    assert "labwork[mlflow]" in err.value.hint


def _cli(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABWORK_")}
    env["LABWORK_HOME"] = str(home)
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "labwork", "run", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_run_commands(own_cp, tmp_path):
    cp = own_cp
    run = uuid.uuid4().hex
    cp.request("POST", "/api/history/records", json={"records": _fill(run)})
    cp.request("PUT", f"/api/runs/{run}/artifacts/outputs/model.pkl", content=b"pickled")
    other = uuid.uuid4().hex
    cp.request("POST", "/api/history/records", json={"records": [
        {"id": uuid.uuid4().hex, "type": "run", "run": other, "project": "wine", "project_dir": "/p/wine",
         "notebook": "wine.ipynb"}]})

    r = _cli(cp.home, "list", "--json")
    assert r.returncode == 0, r.stderr
    assert {x["id"] for x in json.loads(r.stdout)["runs"]} == {run, other}
    r = _cli(cp.home, "list", "--project", "/p/iris", "--status", "failed", "--json")
    assert [x["id"] for x in json.loads(r.stdout)["runs"]] == [run]
    r = _cli(cp.home, "list", "--notebook", "wine.ipynb")
    assert r.returncode == 0 and other[:12] in r.stdout and run[:12] not in r.stdout

    r = _cli(cp.home, "show", run[:10], "--json")
    shown = json.loads(r.stdout)
    assert len(shown["entries"]) == 2 and shown["artifacts"][0]["path"] == "outputs/model.pkl"
    r = _cli(cp.home, "show", run[:10])
    assert r.returncode == 0 and "ZeroDivisionError" in r.stdout and "outputs/model.pkl" in r.stdout
    r = _cli(cp.home, "show", "ffffffff")
    assert r.returncode == 3 and "no run 'ffffffff'" in r.stderr

    dest = tmp_path / "dl"
    r = _cli(cp.home, "download", run, "--to", str(dest))
    assert r.returncode == 0, r.stderr
    assert (dest / "outputs" / "model.pkl").read_bytes() == b"pickled"

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = _cli(cp.home, "export", "--mlflow", uri, run, "--json")
    assert r.returncode == 0, r.stderr
    [res] = json.loads(r.stdout)
    from mlflow.tracking import MlflowClient
    parent = MlflowClient(tracking_uri=uri).get_run(res["mlflow_run_id"])
    assert parent.data.tags["labwork.run_id"] == run
