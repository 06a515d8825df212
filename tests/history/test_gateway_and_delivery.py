"""Gateway statements as entries (Livy-shaped dicts), and the sender's spool replay."""
from __future__ import annotations

import time
import uuid

from tests.support import ControlPlane, wait_for
from tests.support.kernels import spool_records
from labwork.history import ingestion, queries
from labwork.history.delivery import Sender, append_spool
from labwork.history.service import HistoryService, gateway_run_id
from labwork.settings import load_settings


def _history(store, tmp_path) -> HistoryService:
    return HistoryService(load_settings(flags={"home": str(tmp_path / "home")}, environ={}), store)


def _session(sid=0, history="true", notebook="spark.ipynb", project="/p/iris", app="local-1700000000000"):
    conf = {"spark.labwork.project": project, "spark.driver.memory": "1g"}
    if history is not None:
        conf["spark.labwork.history"] = history
    if notebook:
        conf["spark.labwork.notebook"] = notebook
    return {"id": sid, "name": None, "appId": app, "owner": None, "proxyUser": None, "state": "idle",
            "kind": "pyspark", "appInfo": {"driverLogUrl": None, "sparkUiUrl": None}, "log": [], "conf": conf}


def _stmt(sid, code, state="available", output=None, started=None, completed=None):
    now = int(time.time() * 1000)
    return {"id": sid, "code": code, "state": state, "progress": 1.0, "output": output,
            "started": started or now - 1500, "completed": completed if completed is not None else now}


def test_gateway_statements_become_entries(store, tmp_path):
    history = _history(store, tmp_path)
    s = _session()
    ok = {"status": "ok", "execution_count": 0, "data": {"text/plain": "2"}}
    err = {"status": "error", "execution_count": 1, "ename": "ZeroDivisionError", "evalue": "division by zero",
           "traceback": ["Traceback (most recent call last):\n", "ZeroDivisionError: division by zero\n"]}
    history.record_gateway_statement(s, _stmt(0, "1+1", output=ok))
    history.record_gateway_statement(s, _stmt(1, "1/0", output=err))
    history.record_gateway_statement(s, _stmt(1, "1/0", output=err))                   # told twice: once
    history.record_gateway_statement(s, _stmt(2, "spark.range(10).count()", state="running", completed=0))
    history.record_gateway_statement(s, _stmt(2, "spark.range(10).count()", state="cancelled", output=None))
    run = queries.get_run(store, gateway_run_id(s))
    assert run["source"] == "gateway" and run["project_dir"] == "/p/iris" and run["notebook"] == "spark.ipynb"
    assert [(e["code"], e["status"], e["kind"]) for e in run["entries"]] == [
        ("1+1", "ok", "statement"), ("1/0", "error", "statement"), ("spark.range(10).count()", "interrupted", "statement")]
    assert run["entries"][1]["error_name"] == "ZeroDivisionError"
    assert "ZeroDivisionError: division by zero" in run["entries"][1]["traceback"]
    assert run["entries"][0]["duration_ms"] == 1500
    assert run["entry_count"] == 3

    # history off for the session, or a session of no project: nothing recorded
    off = _session(sid=5, history="false")
    history.record_gateway_statement(off, _stmt(0, "x = 1", output=ok))
    plain = _session(sid=6)
    plain["conf"] = {"spark.driver.memory": "1g"}
    history.record_gateway_statement(plain, _stmt(0, "x = 1", output=ok))
    assert queries.list_runs(store)["total"] == 1
    # a broken statement dict never raises into the gateway
    history.record_gateway_statement(s, {"id": "x", "state": "available", "started": "soon"})


def test_gateway_history_switched_from_a_local_cell(store, tmp_path):
    """`%labwork history on` in a %%local cell of the notebook's kernel overrides the default."""
    history = _history(store, tmp_path)
    kernel_run = uuid.uuid4().hex
    ingestion.ingest(store, [{"id": uuid.uuid4().hex, "type": "run", "run": kernel_run, "source": "kernel",
                            "project_dir": "/p/iris", "notebook": "spark.ipynb"},
                           {"id": uuid.uuid4().hex, "type": "history", "run": kernel_run, "on": True}])
    s = _session(sid=9, history=None)
    history.record_gateway_statement(s, _stmt(0, "1+1", output={"status": "ok", "data": {}}))
    assert queries.get_run(store, gateway_run_id(s))["entry_count"] == 1
    ingestion.ingest(store, [{"id": uuid.uuid4().hex, "type": "history", "run": kernel_run, "on": False}])
    history.record_gateway_statement(s, _stmt(1, "2+2", output={"status": "ok", "data": {}}))
    assert queries.get_run(store, gateway_run_id(s))["entry_count"] == 1


def test_spool_replay_delivers_each_record_once(labwork_home):
    cp = ControlPlane(labwork_home)
    run = uuid.uuid4().hex
    recs = [{"id": uuid.uuid4().hex, "type": "run", "run": run, "at": time.time(), "project": "p"}]
    recs += [{"id": f"e{i}-{run[:8]}", "type": "entry", "run": run, "seq": i, "code": f"c{i}",
              "started": time.time(), "ended": time.time(), "status": "ok"} for i in range(1, 6)]
    sender = Sender(labwork_home / "spool", run, lambda prefer: cp.url if cp.proc else None, lambda: cp.token,
                    flush_interval=0.05)
    for r in recs[:3]:
        sender.put(r)
    assert sender.flush(20)
    assert [x["id"] for x in spool_records(labwork_home)] == [r["id"] for r in recs[:3]]   # nobody to send to
    cp.start()
    try:
        # a spool that also holds records already delivered (an answer lost after the store took them)
        cp.request("POST", "/api/history/records", json={"records": recs[:2]})
        append_spool(sender.spool_file, recs[1:2])
        for r in recs[3:]:
            sender.put(r)
        wait_for(lambda: sender.flush(5) and not spool_records(labwork_home), what="spool replayed")
        wait_for(lambda: cp.runs() and cp.runs()[0]["entry_count"] == 5, what="5 entries")
        run_info = cp.request("GET", f"/api/runs/{run}")
        assert [e["seq"] for e in run_info["entries"]] == [1, 2, 3, 4, 5]
        sender.close()
    finally:
        cp.stop()


def test_gateway_runs_carry_the_projects_name(store, tmp_path):
    """A session tagged only with the project folder (`iris/`, named `myIris` in its labwork.toml)
    is recorded under the name, so `run list --project myIris` lists it; the kernels' sessions also
    carry the name (`spark.labwork.project_name`)."""
    from labwork.project.files import init_project
    root = init_project(tmp_path / "iris", name="myIris").root
    history = _history(store, tmp_path)
    ok = {"status": "ok", "execution_count": 0, "data": {"text/plain": "2"}}
    s = _session(sid=11, project=str(root))
    history.record_gateway_statement(s, _stmt(0, "1+1", output=ok))
    assert queries.get_run(store, gateway_run_id(s))["project"] == "myIris"
    assert [r["id"] for r in queries.list_runs(store, project="myIris")["runs"]] == [gateway_run_id(s)]
    named = _session(sid=12, project=str(root))
    named["conf"]["spark.labwork.project_name"] = "otherName"
    history.record_gateway_statement(named, _stmt(0, "1+1", output=ok))
    assert queries.get_run(store, gateway_run_id(named))["project"] == "otherName"


def test_a_session_that_ends_ends_its_run(store, tmp_path):
    history = _history(store, tmp_path)
    ok = {"status": "ok", "execution_count": 0, "data": {"text/plain": "2"}}
    deleted, dead = _session(sid=21), _session(sid=22)
    for s in (deleted, dead):
        history.record_gateway_statement(s, _stmt(0, "1+1", output=ok))
    history.end_gateway_session(deleted | {"state": "killed"})
    history.end_gateway_session(dead | {"state": "dead", "error": "the driver exited (signal 9)"})
    gone = queries.get_run(store, gateway_run_id(deleted))
    assert gone["status"] == "completed" and gone["info"]["end_reason"] == "the Spark session 21 was deleted"
    died = queries.get_run(store, gateway_run_id(dead))
    assert died["status"] == "failed" and "ended (dead): the driver exited (signal 9)" in died["info"]["end_reason"]
