"""A standalone Spark master and worker (pyspark's own `spark-class` script) on 127.0.0.1: a
gateway session on spark://… whose job runs on that worker, and batches through spark-submit."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from tests.support import free_port
from tests.support.gateway import GatewayServer, gw_settings, run, text, wait_session

from labwork.gateway.batches import spark_home

pytestmark = pytest.mark.slow


def _daemon(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("standalone")
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_WORKER_DIR=str(root / "work"),
               SPARK_DAEMON_MEMORY="256m")
    port, ui = free_port(), free_port()
    master = _daemon(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port",
                      str(port), "--webui-port", str(ui)], root / "master.log", env)
    url = f"spark://127.0.0.1:{port}"
    worker = _daemon(["org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                      "--cores", "2", "--memory", "1536m", "--webui-port", str(free_port())],
                     root / "worker.log", env)
    procs = [master, worker]
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                state = httpx.get(f"http://127.0.0.1:{ui}/json/", timeout=2).json()
                if state.get("aliveworkers", 0) >= 1:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert time.monotonic() < deadline, (root / "master.log").read_text()[-2000:]
            time.sleep(0.5)
        yield {"url": url, "ui": f"http://127.0.0.1:{ui}", "root": root}
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster_gateway(cluster, tmp_path_factory):
    jobs = tmp_path_factory.mktemp("jobs")
    gw = GatewayServer(gw_settings(master=cluster["url"], allowed_local_paths=[str(jobs)]),
                       tmp_path_factory.mktemp("cluster-gw")).start()
    gw.jobs = jobs  # type: ignore[attr-defined]
    yield gw
    gw.stop()


def test_session_job_runs_on_the_worker(cluster, cluster_gateway):
    with cluster_gateway.client() as c:
        sid = c.post("/sessions", json={"kind": "pyspark", "executorMemory": "512m",
                                        "conf": {"spark.cores.max": "1"}}).json()["id"]
        s = wait_session(c, sid)
        assert s["state"] == "idle", s["log"]
        assert s["appId"].startswith("app-")
        assert text(run(c, sid, "sc.master")) == repr(cluster["url"])
        assert text(run(c, sid, "sc.parallelize(range(100), 2).map(lambda x: x * 2).sum()")) == "9900"
        executors = text(run(c, sid, "len(sc._jsc.sc().statusTracker().getExecutorInfos())"))
        assert int(executors) >= 2  # the driver and at least one executor on the worker
        state = httpx.get(cluster["ui"] + "/json/").json()
        apps = [a for a in state["activeapps"] if a["id"] == s["appId"]]
        assert apps and apps[0]["cores"] >= 1
        assert c.delete(f"/sessions/{sid}").status_code == 200


def test_batches(cluster, cluster_gateway):
    jobs: Path = cluster_gateway.jobs
    ok = jobs / "ok.py"
    ok.write_text("import sys\nfrom pyspark.sql import SparkSession\n"
                  "spark = SparkSession.builder.getOrCreate()\n"
                  "print('RESULT', spark.range(1000).count(), spark.sparkContext.master, sys.argv[1:])\n"
                  "spark.stop()\n")
    bad = jobs / "bad.py"
    bad.write_text("raise SystemExit(3)\n")
    slow = jobs / "slow.py"
    slow.write_text("import time\ntime.sleep(300)\n")
    with cluster_gateway.client() as c:
        assert c.post("/batches", json={"file": str(ok), "colour": 1}).status_code == 400
        assert c.post("/batches", json={}).status_code == 400
        assert c.post("/batches", json={"file": "/etc/hostname"}).status_code == 400
        b = c.post("/batches", json={"file": str(ok), "args": ["a b", "λ"], "name": "okjob",
                                     "conf": {"spark.cores.max": "1"}})
        assert b.status_code == 201, b.text
        b = b.json()
        assert set(b) >= {"id", "name", "owner", "proxyUser", "state", "appId", "appInfo", "log"}
        assert b["state"] in ("starting", "running")
        f = c.post("/batches", json={"file": str(bad)}).json()
        s = c.post("/batches", json={"file": str(slow)}).json()
        deadline = time.monotonic() + 240
        while c.get("/batches/okjob/state").json()["state"] in ("starting", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        done = c.get(f"/batches/{b['id']}").json()
        assert done["state"] == "success", c.get(f"/batches/{b['id']}/log", params={"size": -1}).json()
        log = c.get(f"/batches/{b['id']}/log", params={"from": 0, "size": 10000}).json()["log"]
        assert any(line.startswith(f"RESULT 1000 {cluster['url']} ['a b', 'λ']") for line in log)
        assert done["appId"] and done["appId"].startswith("app-")
        while c.get(f"/batches/{f['id']}/state").json()["state"] in ("starting", "running"):
            time.sleep(0.2)
        assert c.get(f"/batches/{f['id']}").json()["state"] == "dead"
        listing = c.get("/batches").json()
        assert listing["total"] == 3 and len(listing["sessions"]) == 3
        pid = cluster_gateway.gateway.batches[s["id"]].proc.pid
        assert c.delete(f"/batches/{s['id']}").json() == {"msg": "deleted"}
        assert c.get(f"/batches/{s['id']}").status_code == 404
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
