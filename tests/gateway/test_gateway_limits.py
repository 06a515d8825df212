"""Issue 15, items 9-11: bounded outputs, sessions that fail to start, deleting a starting
session, and the session object's shapes as Livy has them."""
from __future__ import annotations

import gc
import json
import time

import psutil
import pytest
from tests.support.gateway import run, text, wait_session

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def _driver_dirs(gateway, sid: int) -> list:
    return sorted((gateway.gateway.state_dir / "drivers").glob(f"session-{sid}-*"))


def test_outputs_are_bounded(gateway, sessions):
    """A 60 MiB print ends with an error naming its size and the cap (default 50 MiB, Livy's
    rpc.max.size); the gateway's memory does not take it in; the metadata file, rewritten after
    every statement, never holds an output above its small bound."""
    sid = sessions["pyspark"]
    me = psutil.Process()
    with gateway.client() as c:
        run(c, sid, "1")
        gc.collect()
        before = me.memory_info().rss
        big = run(c, sid, "print('x' * (60 * 1024 * 1024))", timeout=300)
        out = big["output"]
        assert big["state"] == "available" and out["status"] == "error", out
        assert out["ename"] == "OutputTooLarge"
        assert "60.0 MiB" in out["evalue"] and "50.0 MiB" in out["evalue"], out["evalue"]
        gc.collect()
        assert me.memory_info().rss - before < 20 * MiB
        # under the cap: returned whole, but not written into the metadata file
        whole = run(c, sid, "print('y' * (2 * 1024 * 1024))")
        assert len(text(whole)) == 2 * MiB
        marker = run(c, sid, "'meta-saved'")
        meta_path = gateway.gateway.session_meta_path(sid)
        deadline = time.monotonic() + 60
        while True:  # the housekeeper saves changed sessions once a second
            meta = json.loads(meta_path.read_text())
            if any(st["id"] == marker["id"] for st in meta["statements"]):
                break
            assert time.monotonic() < deadline, "session metadata never saved"
            time.sleep(0.2)
        assert meta_path.stat().st_size < 512 * 1024
        kept = next(st for st in meta["statements"] if st["id"] == whole["id"])
        assert kept["output"]["ename"] == "OutputNotKept"


def test_failed_start_is_dead_and_says_why(gateway, tmp_path):
    """Item 10: an unresolvable spark.jars.packages ends the session `dead` (Livy), /log shows the
    driver's own output with Livy's stdout:/stderr: markers and the real cause; deleting the
    session removes its driver folder."""
    with gateway.client() as c:
        s = c.post("/sessions", json={"kind": "pyspark", "conf": {
            "spark.jars.packages": "x:y:1", "spark.jars.ivy": str(tmp_path / "ivy")}}).json()
        final = wait_session(c, s["id"], {"error", "dead"}, timeout=240)
        assert final["state"] == "dead", final
        assert len(final["log"]) <= 10
        log = c.get(f"/sessions/{s['id']}/log", params={"size": -1}).json()["log"]
        assert log[0] == "stdout: " and "\nstderr: " in log
        stderr = log[log.index("\nstderr: "):]
        cause = [line for line in stderr if "UNRESOLVED DEPENDENCIES" in line]
        assert cause, log
        assert any("x#y;1" in line for line in log), log
        assert _driver_dirs(gateway, s["id"])
        assert c.delete(f"/sessions/{s['id']}").status_code == 200
        assert _driver_dirs(gateway, s["id"]) == []


def test_delete_starting_session_removes_its_driver(gateway):
    """Item 10 and 11: a session deleted while `starting` leaves no driver folder behind; `?doAs=`
    wins over the body's proxyUser; counts are 0 where unset, as Livy's are."""
    with gateway.client() as c:
        r = c.post("/sessions", params={"doAs": "alice"},
                   json={"kind": "pyspark", "proxyUser": "bob"})
        assert r.status_code == 201
        s = r.json()
        assert s["proxyUser"] == "alice"
        assert (s["driverCores"], s["executorCores"], s["numExecutors"]) == (0, 0, 0)
        assert s["driverMemory"] is None
        deadline = time.monotonic() + 60
        while not _driver_dirs(gateway, s["id"]):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert c.get(f"/sessions/{s['id']}").json()["state"] == "starting"
        assert c.delete(f"/sessions/{s['id']}").status_code == 200
        assert _driver_dirs(gateway, s["id"]) == []


def test_session_log_holds_the_last_ten_lines(gateway, sessions):
    """Item 11: the session object's `log` is the last 10 lines of /log (Livy), not 20."""
    with gateway.client() as c:
        sid = sessions["pyspark"]
        run(c, sid, "import sys\nfor i in range(15):\n"
                    "    print(f'log line {i}', file=sys.__stderr__, flush=True)")
        full = c.get(f"/sessions/{sid}/log", params={"size": -1}).json()["log"]
        assert len(full) > 10 and full[0] == "stdout: "
        view = c.get(f"/sessions/{sid}").json()["log"]
        assert view == full[-10:] and view[-1] == "log line 14"
