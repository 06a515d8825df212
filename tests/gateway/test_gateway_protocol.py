"""Livy's protocol, edge by edge, with plain HTTP (httpx) against the shared gateway."""
from __future__ import annotations

import base64
import time

import pytest
from tests.support.gateway import run, text

SESSION_KEYS = {"id", "name", "appId", "owner", "proxyUser", "state", "kind", "appInfo", "log", "ttl",
                "idleTimeout", "driverMemory", "driverCores", "executorMemory", "executorCores",
                "conf", "archives", "files", "heartbeatTimeoutInSecond", "jars", "numExecutors",
                "pyFiles", "queue"}


def test_version_and_root(gateway):
    with gateway.client() as c:
        v = c.get("/version")
        assert v.status_code == 200 and v.json()["version"] == "0.9.0-labwork"
        assert c.get("/").status_code == 200
        missing = c.get("/no/such/route")
        assert missing.status_code == 404 and "msg" in missing.json()


@pytest.mark.parametrize("body, words", [
    ({"kind": "pyspark", "colour": "blue"}, ["colour"]),
    ({"kind": "cobol"}, ["cobol"]),
    ({"kind": "sparkr"}, ["R"]),
    ({"conf": {"spark.master": "local[1]"}}, ["spark.master"]),
    ({"name": "1234"}, ["digits"]),
    ({"driverMemory": "lots"}, ["driverMemory"]),
    ({"numExecutors": "two"}, ["numExecutors"]),
    ({"ttl": "soon"}, ["ttl"]),
    ({"jars": ["/etc/passwd"]}, ["jars", "allowed"]),
    ([1, 2], ["object"]),
])
def test_bad_create_bodies_are_400(gateway, body, words):
    with gateway.client() as c:
        r = c.post("/sessions", json=body)
        assert r.status_code == 400, r.text
        msg = r.json()["msg"]
        for w in words:
            assert w in msg
        assert c.post("/sessions", content=b"{not json",
                      headers={"Content-Type": "application/json"}).status_code == 400
        assert c.post("/sessions", content=b"{not json").status_code == 415  # not said to be JSON


def test_unknown_session_is_404(gateway):
    with gateway.client() as c:
        for path in ("/sessions/999", "/sessions/nobody", "/sessions/999/state",
                     "/sessions/999/log", "/sessions/999/statements"):
            r = c.get(path)
            assert r.status_code == 404, path
        assert c.get("/sessions/999").json() == {"msg": "Session '999' not found."}
        assert c.delete("/sessions/999").status_code == 404
        assert c.post("/sessions/999/statements", json={"code": "1"}).status_code == 404


@pytest.mark.slow
def test_session_object_names_and_paging(gateway, sessions):
    with gateway.client() as c:
        s = c.get("/sessions/shared-py").json()
        assert set(s) == SESSION_KEYS
        assert s["id"] == sessions["pyspark"] and s["kind"] == "pyspark" and s["state"] == "idle"
        assert s["appId"] and s["appInfo"]["sparkUiUrl"].startswith("http://")
        assert isinstance(s["log"], list) and all(isinstance(x, str) for x in s["log"])
        assert c.get("/sessions/shared-py/state").json() == {"id": s["id"], "state": "idle"}
        assert c.post("/sessions", json={"name": "shared-py"}).status_code == 400  # unique
        everything = c.get("/sessions").json()
        assert everything["total"] == len(everything["sessions"]) >= 3
        page = c.get("/sessions", params={"from": 1, "size": 1}).json()
        assert page["from"] == 1 and page["total"] == everything["total"]
        assert [p["id"] for p in page["sessions"]] == [everything["sessions"][1]["id"]]
        log = c.get("/sessions/shared-py/log", params={"size": 3}).json()
        assert log["id"] == s["id"] and len(log["log"]) <= 3 and log["total"] >= len(log["log"])
        log0 = c.get("/sessions/shared-py/log", params={"from": 0}).json()
        assert log0["from"] == 0


@pytest.mark.slow
def test_statement_semantics(gateway, sessions):
    sid = sessions["pyspark"]
    with gateway.client() as c:
        assert text(run(c, sid, "spark")).startswith("<pyspark.sql")
        import pyspark
        assert text(run(c, sid, "sc.version")) == repr(pyspark.__version__)
        assert text(run(c, sid, "sqlContext")) != ""
        assert text(run(c, sid, "import sys\nprint('out')\nprint('err', file=sys.stderr)\n'last'")) \
            == "out\n'last'\nerr"
        assert text(run(c, sid, "z = 1")) == ""
        nasty = 'q"uote \\ back\ttab λ 😀'
        assert text(run(c, sid, f"print({nasty!r})")) == nasty
        j = run(c, sid, "d = {'a': [1, 2.5, None], 'λ': 'x'}\n%json d")
        assert j["output"]["data"]["application/json"] == {"a": [1, 2.5, None], "λ": "x"}
        t = run(c, sid, "rows = [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'y'}]\n%table rows")
        table = t["output"]["data"]["application/vnd.livy.table.v1+json"]
        assert table["headers"] == [{"name": "a", "type": "INT_TYPE"}, {"name": "b", "type": "STRING_TYPE"}]
        assert table["data"] == [[1, "x"], [2, "y"]]
        png = run(c, sid, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\n%matplot plt")
        assert base64.b64decode(png["output"]["data"]["image/png"])[:4] == b"\x89PNG"
        err = run(c, sid, "def f(:")
        assert err["state"] == "available" and err["output"]["ename"] == "SyntaxError"
        unk = run(c, sid, "%nosuchmagic x")
        assert unk["output"]["status"] == "error"
        big = run(c, sid, "spark.range(100).selectExpr('sum(id)').collect()[0][0]")
        assert text(big) == "4950" and big["progress"] == 1.0
        assert big["started"] > 0 and big["completed"] >= big["started"]
        listing = c.get(f"/sessions/{sid}/statements").json()
        assert listing["total_statements"] == len(listing["statements"]) >= 10
        one = c.get(f"/sessions/{sid}/statements/0").json()
        assert set(one) == {"id", "code", "state", "output", "progress", "started", "completed"}
        assert c.get(f"/sessions/{sid}/statements/99999").status_code == 404
        r = c.post(f"/sessions/{sid}/statements", json={"code": "1", "colour": "red"})
        assert r.status_code == 400 and "colour" in r.json()["msg"]
        r = c.post(f"/sessions/{sid}/statements", json={"code": "1", "kind": "sql"})
        assert r.status_code == 400
        r = c.post(f"/sessions/{sid}/statements", json={"kind": "pyspark"})
        assert r.status_code == 400
        comp = c.post(f"/sessions/{sid}/completion", json={"code": "spark.ran", "kind": "pyspark",
                                                          "cursor": 9}).json()
        assert "spark.range" in comp["candidates"]


@pytest.mark.slow
def test_on_statement_callback(gateway, sessions):
    with gateway.client() as c:
        run(c, "shared-mixed", "callback_marker = 42")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        hits = [(s, st) for s, st in gateway.seen if st["code"] == "callback_marker = 42"]
        if hits:
            break
        time.sleep(0.05)
    s, st = hits[0]
    assert s["name"] == "shared-mixed" and s["conf"] == {"spark.labwork.test": "yes"}
    assert "proxyUser" in s and st["state"] == "available"


@pytest.mark.slow
def test_shared_session_kinds(gateway, sessions):
    with gateway.client() as c:
        sid = sessions["shared"]
        assert text(run(c, sid, "1 + 1")) == "2"
        sql = run(c, sid, "SELECT 1 AS one, 'λ' AS l", kind="sql")
        data = sql["output"]["data"]["application/json"]
        assert [f["name"] for f in data["schema"]["fields"]] == ["one", "l"]
        assert data["data"] == [[1, "λ"]]
        bad = run(c, sid, "SELECT * FROM nowhere_at_all", kind="sql")
        assert bad["output"]["status"] == "error"
        assert c.post(f"/sessions/{sid}/statements", json={"code": "1", "kind": "sparkr"}).status_code == 400


@pytest.mark.slow
def test_scala_statements(gateway, sessions):
    with gateway.client() as c:
        sid = sessions["shared"]
        assert text(run(c, sid, "1 + 1", kind="spark")) == "res0: Int = 2\n"  # raw, as Livy
        out = text(run(c, sid, "val n = spark.range(10).count()\nprintln(\"hello λ\")", kind="spark"))
        assert "n: Long = 10" in out and "hello λ" in out
        closure = run(c, sid, "sc.parallelize(1 to 10).map(_ * 2).sum()", kind="spark")
        assert "110.0" in text(closure)
        err = run(c, sid, "val x: Int = \"nope\"", kind="spark")
        assert err["output"]["status"] == "error" and err["output"]["ename"] == "Error"
        assert text(run(c, sid, "n + 1", kind="spark")).endswith("= 11\n")
        # what sparkmagic's Spark kernel sends for `%%sql -o`: rows printed as JSON, nothing else
        rows = text(run(c, sid, 'spark.sql("SELECT 1 AS a, \'λ\' AS b").toJSON.take(1).foreach(println)',
                        kind="spark"))
        assert rows == '{"a":1,"b":"λ"}\n'
        sess = c.post("/sessions", json={"kind": "spark", "name": "scala-only"}).json()
        assert sess["kind"] == "spark"
        c.delete("/sessions/scala-only")


@pytest.mark.slow
def test_proxy_user_and_synchronous_delete(gateway):
    with gateway.client() as c:
        r = c.post("/sessions", params={"doAs": "alice"}, json={"kind": "pyspark", "name": "short"})
        assert r.status_code == 201
        s = r.json()
        assert s["proxyUser"] == "alice" and s["state"] == "starting" and s["name"] == "short"
        d = c.delete("/sessions/short")
        assert d.status_code == 200 and d.json() == {"msg": "deleted"}
        assert c.get(f"/sessions/{s['id']}").status_code == 404
        assert s["id"] not in [x["id"] for x in c.get("/sessions").json()["sessions"]]
        # ids are never reused
        r2 = c.post("/sessions", json={"kind": "pyspark", "heartbeatTimeoutInSecond": 1})
        assert r2.json()["id"] > s["id"]
        # heartbeat expiry: nobody asks about it, so it is deleted
        time.sleep(3.5)
        assert c.get(f"/sessions/{r2.json()['id']}").status_code == 404


@pytest.mark.slow
def test_ttl_expiry(gateway):
    with gateway.client() as c:
        s = c.post("/sessions", json={"kind": "pyspark", "ttl": "2s"}).json()
        deadline = time.monotonic() + 15
        while c.get(f"/sessions/{s['id']}").status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.25)


def test_basic_auth_bearer_and_csrf(tmp_path, monkeypatch):
    from tests.support.gateway import GatewayServer, gw_settings
    monkeypatch.setenv("LIVY_TEST_PASSWORD", "s3cret λ")
    settings = gw_settings(auth_user="ada", auth_password_env="LIVY_TEST_PASSWORD",
                           csrf_protection=True)
    server = GatewayServer(settings, tmp_path / "state").start()
    try:
        import httpx
        url = server.url
        assert httpx.get(url + "/sessions").status_code == 401
        assert httpx.get(url + "/sessions", auth=("ada", "wrong")).status_code == 401
        assert httpx.get(url + "/sessions", auth=("eve", "s3cret λ")).status_code == 401
        ok = httpx.get(url + "/sessions", auth=("ada", "s3cret λ"))
        assert ok.status_code == 200 and ok.json()["total"] == 0
        bearer = {"Authorization": "Bearer s3cret λ".encode().decode("latin-1")}
        assert httpx.get(url + "/version", headers={"Authorization": "Bearer nope"}).status_code == 401
        no_csrf = httpx.post(url + "/sessions", auth=("ada", "s3cret λ"), json={"colour": 1})
        assert no_csrf.status_code == 400 and "CSRF" in no_csrf.json()["msg"]
        with_csrf = httpx.post(url + "/sessions", auth=("ada", "s3cret λ"), json={"colour": 1},
                               headers={"X-Requested-By": "me"})
        assert with_csrf.status_code == 400 and "colour" in with_csrf.json()["msg"]
        del bearer
    finally:
        server.stop()


def test_authenticate_callback(tmp_path):
    from tests.support.gateway import GatewayServer, gw_settings
    server = GatewayServer(gw_settings(), tmp_path / "state",
                           authenticate=lambda r: r.headers.get("x-key") == "k").start()
    try:
        import httpx
        r = httpx.get(server.url + "/sessions")
        assert r.status_code == 401 and "msg" in r.json()
        assert httpx.get(server.url + "/sessions", headers={"x-key": "k"}).status_code == 200
    finally:
        server.stop()


@pytest.mark.slow
def test_session_that_cannot_start(gateway):
    """A driver whose JVM cannot start: the session ends in `error` with the reason in its log,
    and a statement queued meanwhile ends too (no client polls forever)."""
    from tests.support.gateway import wait_session
    with gateway.client() as c:
        s = c.post("/sessions", json={"kind": "pyspark", "conf": {"spark.driver.memory": "-5x"}}).json()
        st = c.post(f"/sessions/{s['id']}/statements", json={"code": "1 + 1"}).json()
        final = wait_session(c, s["id"], {"error", "dead"}, timeout=120)
        assert any("did not start" in line for line in final["log"]), final["log"]
        end = c.get(f"/sessions/{s['id']}/statements/{st['id']}").json()
        assert end["state"] == "available" and end["output"]["status"] == "error"
        assert c.post(f"/sessions/{s['id']}/statements", json={"code": "1"}).status_code == 400
        assert c.delete(f"/sessions/{s['id']}").status_code == 200
