"""Cancel, driver death, recovery after a gateway restart."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from tests.support.gateway import GatewayServer, gw_settings, run, text, wait_session

pytestmark = pytest.mark.slow


def _wait_statement(c, sid, stid, states, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        st = c.get(f"/sessions/{sid}/statements/{stid}").json()
        if st["state"] in states:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.05)


@pytest.mark.parametrize("code", [
    "import time\ntime.sleep(120)",
    "import time\nspark.range(0, 400, 1, 4).rdd.map(lambda x: time.sleep(1) or x).count()",
])
def test_cancel_running_statement(gateway, sessions, code):
    sid = sessions["pyspark"]
    with gateway.client() as c:
        st = c.post(f"/sessions/{sid}/statements", json={"code": code}).json()
        waiting = c.post(f"/sessions/{sid}/statements", json={"code": "never = 1"}).json()
        _wait_statement(c, sid, st["id"], {"running"})
        assert c.get(f"/sessions/{sid}/state").json()["state"] == "busy"
        time.sleep(1.0)
        progress = c.get(f"/sessions/{sid}/statements/{st['id']}").json()["progress"]
        assert isinstance(progress, float) and 0.0 <= progress < 1.0
        assert c.post(f"/sessions/{sid}/statements/{waiting['id']}/cancel").json() == {"msg": "canceled"}
        t0 = time.monotonic()
        assert c.post(f"/sessions/{sid}/statements/{st['id']}/cancel").json() == {"msg": "canceled"}
        done = _wait_statement(c, sid, st["id"], {"cancelled", "available"}, timeout=20)
        assert done["state"] == "cancelled", done
        assert time.monotonic() - t0 < 15
        assert c.get(f"/sessions/{sid}/statements/{waiting['id']}").json()["state"] == "cancelled"
        wait_session(c, sid, {"idle"}, timeout=10)
        # the driver is healthy afterwards, and the cancelled job is not holding the cores
        t1 = time.monotonic()
        assert text(run(c, sid, "spark.range(10).count()")) == "10"
        assert time.monotonic() - t1 < 30
        assert text(run(c, sid, "'never' in globals()")) == "False"


def test_recovery_then_driver_death(tmp_path):
    """A gateway that goes away without stopping its drivers; the next one on the same state dir
    takes the session back (variables intact); then the driver is killed mid-statement."""
    state = tmp_path / "state"
    first = GatewayServer(gw_settings(), state).start()
    try:
        with first.client() as c:
            sid = c.post("/sessions", json={"kind": "pyspark", "name": "phoenix"}).json()["id"]
            wait_session(c, sid, {"idle"})
            assert text(run(c, sid, "kept = 'still here'")) == ""
        # simulate a crash: stop serving but leave the driver running
        fut = asyncio.run_coroutine_threadsafe(first.gateway.stop(kill_drivers=False),
                                               first.gateway.loop)
        fut.result(30)
    finally:
        first.stop()
    second = GatewayServer(gw_settings(), state).start()
    try:
        with second.client() as c:
            s = wait_session(c, "phoenix", {"idle", "dead", "error"}, timeout=90)
            assert s["state"] == "idle" and s["id"] == sid, s
            assert text(run(c, sid, "kept")) == "'still here'"
            assert c.get(f"/sessions/{sid}/statements").json()["total_statements"] >= 2
            new = c.post("/sessions", json={"kind": "pyspark", "heartbeatTimeoutInSecond": 1}).json()
            assert new["id"] > sid  # ids never reused
            c.delete(f"/sessions/{new['id']}")
            # now kill the driver while a statement runs, with another one waiting
            pid = second.gateway.sessions[sid].driver.pid
            running = c.post(f"/sessions/{sid}/statements", json={"code": "import time\ntime.sleep(60)"}).json()
            queued = c.post(f"/sessions/{sid}/statements", json={"code": "1 + 1"}).json()
            _wait_statement(c, sid, running["id"], {"running"})
            os.killpg(pid, signal.SIGKILL)
            for st in (running, queued):
                end = _wait_statement(c, sid, st["id"], {"available", "cancelled"}, timeout=30)
                assert end["state"] == "available" and end["output"]["status"] == "error", end
            s = c.get(f"/sessions/{sid}").json()
            assert s["state"] == "dead"
            assert any("driver process" in line for line in s["log"])
            r = c.post(f"/sessions/{sid}/statements", json={"code": "1"})
            assert r.status_code == 400
            assert c.delete(f"/sessions/{sid}").status_code == 200
    finally:
        second.stop()


def test_warm_pool(tmp_path):
    """A pre-started driver makes a default session idle at once; the pool refills."""
    server = GatewayServer(gw_settings(warm_pool=1), tmp_path / "state").start()
    try:
        gw = server.gateway
        deadline = time.monotonic() + 240
        while not gw.pool:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        with server.client() as c:
            t0 = time.monotonic()
            sid = c.post("/sessions", json={"kind": "pyspark", "name": "pooled",
                                            "idleTimeout": "3s"}).json()["id"]
            s = wait_session(c, sid, {"idle"}, timeout=30)
            assert time.monotonic() - t0 < 5
            assert s["appInfo"]["sparkUiUrl"]
            assert text(run(c, sid, "spark.range(3).count()")) == "3"
            # a session with its own resources does not take a pooled driver
            custom = c.post("/sessions", json={"kind": "pyspark", "conf": {"spark.x": "1"}}).json()
            assert c.get(f"/sessions/{custom['id']}/state").json()["state"] == "starting"
            c.delete(f"/sessions/{custom['id']}")
            # idleTimeout: no statement for 3 s (GETs do not count as activity) -> deleted
            deadline = time.monotonic() + 20
            while c.get(f"/sessions/{sid}").status_code == 200:
                assert time.monotonic() < deadline
                time.sleep(0.5)
    finally:
        server.stop()
