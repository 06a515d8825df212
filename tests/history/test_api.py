"""The run-history routes over real HTTP against a real control plane."""
from __future__ import annotations

import time
import uuid

import httpx


def _records(run: str) -> list[dict]:
    t = time.time()
    return [{"id": uuid.uuid4().hex, "type": "run", "run": run, "at": t, "project": "myIris",
             "project_dir": "/p/iris", "notebook": "iris.ipynb"},
            {"id": "e-" + run, "type": "entry", "run": run, "seq": 1, "code": "x = 1", "started": t,
             "ended": t + 0.1, "status": "ok"},
            {"id": uuid.uuid4().hex, "type": "value", "run": run, "entry": "e-" + run, "name": "acc",
             "seq": 0, "value": [0.5, 0.75], "at": t}]


def test_routes_need_the_token(own_cp):
    url = own_cp.url
    for method, path in (("GET", "/api/runs"), ("GET", "/api/runs/x"), ("POST", "/api/history/records"),
                         ("PUT", "/api/runs/x/artifacts/outputs/a"), ("GET", "/api/runs/x/artifacts/outputs/a"),
                         ("GET", "/api/runs/x/values/acc")):
        assert httpx.request(method, url + path).status_code == 401
        assert httpx.request(method, url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_ingest_query_upload_download(own_cp):
    cp = own_cp
    run = uuid.uuid4().hex
    recs = _records(run)
    assert cp.request("POST", "/api/history/records", json={"records": recs}) == {"accepted": 3, "duplicates": 0, "refused": []}
    assert cp.request("POST", "/api/history/records", json={"records": recs}) == {"accepted": 0, "duplicates": 3, "refused": []}

    page = cp.request("GET", "/api/runs", params={"project": "/p/iris", "status": "running", "limit": 10})
    assert page["total"] == 1 and page["runs"][0]["id"] == run and page["limit"] == 10
    detail = cp.request("GET", f"/api/runs/{run[:10]}")
    assert detail["entries"][0]["code"] == "x = 1" and detail["values"][0]["name"] == "acc"
    series = cp.request("GET", f"/api/runs/{run}/values/acc")
    assert [p["value"] for p in series["points"]] == [0.5, 0.75]

    up = cp.request("PUT", f"/api/runs/{run}/artifacts/outputs/sub/m.bin", params={"id": "art1", "entry": "e-" + run},
                content=b"\x00\x01payload")
    assert up["path"] == "outputs/sub/m.bin" and up["size"] == 9
    r = httpx.get(f"{cp.url}/api/runs/{run}/artifacts/outputs/sub/m.bin", headers=cp.headers())
    assert r.content == b"\x00\x01payload" and r.headers["x-labwork-sha256"] == up["sha256"]
    assert "m.bin" in r.headers["content-disposition"]

    bad = httpx.post(f"{cp.url}/api/history/records", headers=cp.headers(),
                     json={"records": [{"id": "z", "type": "bogus", "run": run}]})
    assert bad.status_code == 400 and "unknown type" in bad.json()["msg"]
    missing = httpx.get(f"{cp.url}/api/runs/{'f' * 32}", headers=cp.headers())
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    assert httpx.get(f"{cp.url}/api/runs", params={"limit": 0}, headers=cp.headers()).status_code == 400

    assert cp.request("DELETE", f"/api/runs/{run}") == {"deleted": run}
    assert cp.runs() == []


def test_no_path_escapes_the_artifact_store(own_cp):
    cp = own_cp
    run = uuid.uuid4().hex
    cp.request("POST", "/api/history/records", json={"records": _records(run)})
    cp.request("PUT", f"/api/runs/{run}/artifacts/outputs/a.txt", content=b"a")
    (cp.home / "artifacts" / "secret.txt").write_text("TOPSECRET-CONTENT")
    h = cp.headers()
    for path in ("outputs/../../../token", "..%2F..%2F..%2Ftoken", "outputs%2F..%2F..%2Fsecret.txt",
                 "%2E%2E/%2E%2E/token", "../secret.txt", "/etc/passwd", "outputs/a.txt%00"):
        r = httpx.get(f"{cp.url}/api/runs/{run}/artifacts/{path}", headers=h)
        assert r.status_code == 404, (path, r.status_code)
        assert b"TOPSECRET-CONTENT" not in r.content and cp.token.encode() not in r.content
    for run_ref in ("..", "..%2F..", "%2E%2E"):
        r = httpx.get(f"{cp.url}/api/runs/{run_ref}/artifacts/token", headers=h)
        assert r.status_code == 404 and cp.token.encode() not in r.content
    for path in ("..%2F..%2Fevil.txt", "outputs/../../evil.txt", "notoutputs/x", "%2Fetc%2Fx"):
        r = httpx.put(f"{cp.url}/api/runs/{run}/artifacts/{path}", headers=h, content=b"evil")
        assert r.status_code in (403, 404), (path, r.status_code)
        if r.status_code == 403:
            assert "only files under the project's outputs/ folder" in r.json()["msg"]
    assert not list(cp.home.rglob("evil.txt"))


def test_upload_size_limit(labwork_home):
    from tests.support import ControlPlane
    (labwork_home / "config.toml").write_text("[history]\nmax_upload_mb = 0.01\n")
    cp = ControlPlane(labwork_home).start()
    try:
        run = uuid.uuid4().hex
        cp.request("POST", "/api/history/records", json={"records": _records(run)})
        r = httpx.put(f"{cp.url}/api/runs/{run}/artifacts/outputs/big.bin", headers=cp.headers(),
                      content=b"x" * 20000)
        assert r.status_code == 403
        assert "over the upload size limit of 0.01 MB (history.max_upload_mb)" in r.json()["msg"]

        def chunked():  # no Content-Length: counted while it streams
            for _ in range(20):
                yield b"x" * 1000
        r = httpx.put(f"{cp.url}/api/runs/{run}/artifacts/outputs/big2.bin", headers=cp.headers(),
                      content=chunked())
        assert r.status_code == 403 and "upload size limit" in r.json()["msg"]
        ok = httpx.put(f"{cp.url}/api/runs/{run}/artifacts/outputs/small.bin", headers=cp.headers(),
                       content=b"x" * 1000)
        assert ok.status_code == 200
        assert [a["path"] for a in cp.request("GET", f"/api/runs/{run}")["artifacts"]] == ["outputs/small.bin"]
        assert len(list((labwork_home / "artifacts" / run).iterdir())) == 1
    finally:
        cp.stop()


def test_ambiguous_prefix_and_project_by_name_over_the_api_and_the_cli(own_cp):
    cp = own_cp
    stem = uuid.uuid4().hex[:8]
    a, b = stem + "a" * 24, stem + "b" * 24
    for run in (a, b):
        cp.request("POST", "/api/history/records", json={"records": _records(run)})
    h = cp.headers()
    for path in (f"/api/runs/{stem}", f"/api/runs/{stem}/values/acc", f"/api/runs/{stem}/artifacts/outputs/x"):
        r = httpx.get(cp.url + path, headers=h)
        assert r.status_code == 409, (path, r.status_code, r.text)
        body = r.json()
        assert body["error"] == "Conflict" and f"{a}, {b}" in body["msg"]
        assert body["details"] == {"candidates": [a, b]}
    assert httpx.delete(f"{cp.url}/api/runs/{stem}", headers=h).status_code == 409
    assert cp.request("GET", f"/api/runs/{stem}a")["id"] == a
    shown = cp.cli("run", "show", stem, check=False)
    assert shown.returncode == 4 and f"{a}, {b}" in shown.stdout + shown.stderr
    # the records name the project "myIris" in folder /p/iris: by either, both runs
    for ref in ("myIris", "/p/iris"):
        assert {r["id"] for r in cp.runs(project=ref)} >= {a, b}


def test_a_run_is_its_senders_and_the_list_filters_by_user(own_cp, tmp_path):
    """A run belongs to the user whose credential delivered its first record (a kernel sends its
    user's personal token): never to a name the records claim; `?user=` narrows the list (the
    caller's projects only, as without it); `--user` does the same on the command line."""
    from labwork.project import init_project
    cp = own_cp
    for name in ("alice", "bob"):
        cp.cli("user", "add", name, "--password-stdin", input_text=f"{name}-password-1\n")
    tokens = {n: cp.cli("token", "create", "--user", n, "--name", "t").stdout.strip() for n in ("alice", "bob")}
    folder = init_project(tmp_path / "shared", "sharedruns").root
    clients = {n: httpx.Client(base_url=cp.url, headers={"Authorization": f"Bearer {t}"}, timeout=60)
               for n, t in tokens.items()}
    try:
        pid = clients["alice"].post("/api/projects", json={"path": str(folder)}).json()["id"]
        assert clients["alice"].post(f"/api/projects/{pid}/members", json={"user": "bob"}).status_code == 201
        runs = {}
        for name, claimed in (("alice", None), ("bob", "alice")):  # bob's records claim to be alice's
            run = uuid.uuid4().hex
            recs = _records(run)
            recs[0] |= {"project": "sharedruns", "project_dir": str(folder)} | ({"user": claimed} if claimed else {})
            r = clients[name].post("/api/history/records", json={"records": recs})
            assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
            runs[name] = run
        # a later record from an administrator does not change whose run it is
        late = [{"id": uuid.uuid4().hex, "type": "seen", "run": runs["alice"], "at": time.time()}]
        assert cp.request("POST", "/api/history/records", json={"records": late})["accepted"] == 1
        # and another member cannot write into alice's run: refused, with why
        forged = [{"id": uuid.uuid4().hex, "type": "entry", "run": runs["alice"], "seq": 9, "code": "x",
                   "started": time.time(), "ended": time.time(), "status": "ok"}]
        r = clients["bob"].post("/api/history/records", json={"records": forged})
        assert r.status_code == 400 and "alice's" in r.text and "bob cannot add to it" in r.text
        for name in ("alice", "bob"):
            assert clients["alice"].get(f"/api/runs/{runs[name]}").json()["user"] == name
            listed = clients["bob"].get("/api/runs", params={"user": name, "project": str(folder)}).json()
            assert [r["id"] for r in listed["runs"]] == [runs[name]] and listed["runs"][0]["user"] == name
        assert clients["alice"].get("/api/runs", params={"user": "nobody"}).json()["total"] == 0
        r = clients["alice"].get("/api/runs", params={"user": "x" * 65})
        assert r.status_code == 400 and "user" in r.text
        out = cp.cli("run", "list", "--user", "bob", "--project", str(folder))
        assert runs["bob"][:12] in out.stdout and runs["alice"][:12] not in out.stdout
        page = clients["alice"].get(f"/projects/{pid}/runs", params={"user": "bob"})
        assert page.status_code == 200 and runs["bob"][:12] in page.text and runs["alice"][:12] not in page.text
    finally:
        for c in clients.values():
            c.close()
