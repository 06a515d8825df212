"""Users, personal tokens and project roles against a real control plane: two users each see
only their projects (API, pages, /livy), member vs owner, the admin sees all, a revoked token
stops at once, and the CLI's `user`, `token` and `project members` commands."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ControlPlane

PASSWORDS = {"alice": "alice-password", "bob": "bob-password-2"}


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    home = tmp_path_factory.mktemp("users-home")
    plane = ControlPlane(home).start()
    for name, password in PASSWORDS.items():
        out = plane.cli("user", "add", name, "--password-stdin", input_text=password + "\n")
        assert f"added user {name}" in out.stdout
    yield plane
    plane.stop()


def token_of(cp: ControlPlane, user: str) -> str:
    """A personal token of `user`, made by the admin (`token create --user`)."""
    proc = cp.cli("token", "create", "--user", user, "--name", "tests")
    return proc.stdout.strip()


def client(cp: ControlPlane, token: str) -> httpx.Client:
    return httpx.Client(base_url=cp.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


@pytest.fixture(scope="module")
def alice(cp: ControlPlane) -> Iterator[httpx.Client]:
    with client(cp, token_of(cp, "alice")) as c:
        yield c


@pytest.fixture(scope="module")
def bob(cp: ControlPlane) -> Iterator[httpx.Client]:
    with client(cp, token_of(cp, "bob")) as c:
        yield c


@pytest.fixture(scope="module")
def projects(cp: ControlPlane, alice: httpx.Client, bob: httpx.Client,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """One project registered by each user: who registers it owns it."""
    from labwork.project import init_project
    out = {}
    for name, c in (("alice", alice), ("bob", bob)):
        folder = tmp_path_factory.mktemp(f"{name}-proj")
        init_project(folder, f"{name}proj")
        r = c.post("/api/projects", json={"path": str(folder)})
        assert r.status_code == 201, r.text
        out[name] = r.json()
    return out


def test_first_start_made_the_admin_and_said_how_to_log_in_without_secrets(cp: ControlPlane) -> None:
    log = cp.log_tail(100_000)
    assert log.count("created the administrator 'admin'") == 1
    said = next(line for line in log.splitlines() if "created the administrator" in line)
    assert "labwork user passwd admin" in said and cp.token not in said  # how, never the secret
    users = {u["name"]: u for u in cp.request("GET", "/api/users")}
    assert users["admin"]["admin"] and not users["alice"]["admin"] and users["alice"]["password"]


def test_each_user_sees_only_their_projects(cp: ControlPlane, alice: httpx.Client, bob: httpx.Client,
                                            projects: dict[str, dict]) -> None:
    a, b = projects["alice"], projects["bob"]
    assert [p["name"] for p in alice.get("/api/projects").json()] == ["aliceproj"]
    assert [p["name"] for p in bob.get("/api/projects").json()] == ["bobproj"]
    unknown = alice.get("/api/projects/999999")
    for path in (f"/api/projects/{b['id']}", f"/api/projects/{b['name']}", f"/api/projects/{b['id']}/notebooks",
                 f"/api/projects/{b['id']}/server", f"/api/projects/{b['id']}/members",
                 f"/api/projects/{b['id']}/jobs"):
        r = alice.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"] == unknown.json()["error"] == "NotFound"
    # registering someone else's folder does not let you in
    assert alice.post("/api/projects", json={"path": b["path"]}).status_code == 404
    assert alice.get(f"/api/projects/{a['id']}/notebooks").status_code == 200
    # the pages: the same 404
    assert alice.get(f"/projects/{b['id']}/jupyter").status_code == 404
    assert alice.get(f"/projects/{a['id']}/jupyter").status_code == 200
    # the admin (LABWORK_HOME/token) sees all
    assert {p["name"] for p in cp.request("GET", "/api/projects")} >= {"aliceproj", "bobproj"}
    assert httpx.get(f"{cp.url}/api/projects/{b['id']}", headers=cp.headers()).status_code == 200


def test_owner_and_member(cp: ControlPlane, alice: httpx.Client, bob: httpx.Client,
                          projects: dict[str, dict]) -> None:
    a = projects["alice"]
    members = alice.get(f"/api/projects/{a['id']}/members").json()
    assert members == [{"user": "alice", "role": "owner", "admin": False}]
    r = alice.post(f"/api/projects/{a['id']}/members", json={"user": "bob"})
    assert r.status_code == 201 and r.json()["role"] == "member"
    # bob, a member: sees and uses the project, cannot change its members or compute targets
    assert {p["name"] for p in bob.get("/api/projects").json()} == {"aliceproj", "bobproj"}
    assert bob.get(f"/api/projects/{a['id']}/notebooks").status_code == 200
    r = bob.post(f"/api/projects/{a['id']}/members", json={"user": "bob", "role": "owner"})
    assert r.status_code == 403 and "owner" in r.json()["msg"]
    r = bob.post(f"/projects/{a['id']}/compute/attach", data={"kind": "local", "name": "x"})
    assert r.status_code == 403
    assert bob.delete(f"/api/projects/{a['id']}/members/alice").status_code == 403
    # the last owner stays
    assert alice.delete(f"/api/projects/{a['id']}/members/alice").status_code == 409
    # removed: 404 again, at once
    assert alice.delete(f"/api/projects/{a['id']}/members/bob").status_code == 200
    assert bob.get(f"/api/projects/{a['id']}/notebooks").status_code == 404
    # unknown users and roles are said so
    r = alice.post(f"/api/projects/{a['id']}/members", json={"user": "nobody"})
    assert r.status_code == 404 and r.json()["where"] == "user"
    r = alice.post(f"/api/projects/{a['id']}/members", json={"user": "bob", "role": "boss"})
    assert r.status_code == 400 and r.json()["where"] == "role"


def test_members_cli(cp: ControlPlane, projects: dict[str, dict]) -> None:
    a = projects["alice"]
    cp.cli("project", "members", "add", a["name"], "bob", "--role", "owner")
    listed = cp.cli("project", "members", "list", str(a["id"]), "--json").stdout
    assert '"user": "bob"' in listed and '"role": "owner"' in listed
    cp.cli("project", "members", "remove", a["path"], "bob")
    assert "bob" not in cp.cli("project", "members", "list", a["name"]).stdout
    bad = cp.cli("project", "members", "add", a["name"], "bob", "--role", "boss", check=False)
    assert bad.returncode == 2 and "role" in bad.stderr


def test_a_revoked_token_stops_at_once(cp: ControlPlane) -> None:
    env = {"LABWORK_API_TOKEN": token_of(cp, "bob")}
    with client(cp, env["LABWORK_API_TOKEN"]) as c:
        assert c.get("/api/me").json()["name"] == "bob"
        mine = c.get("/api/tokens").json()
        assert mine and all(t["user"] == "bob" for t in mine) and "token" not in mine[0]
        newest = max(t["id"] for t in mine)
        assert c.delete(f"/api/tokens/{newest}").status_code == 200
        r = c.get("/api/me")
        assert r.status_code == 401 and "revoked" in r.json()["msg"]
        assert c.get("/livy/sessions").status_code == 401


def test_tokens_are_stored_as_hashes_only(cp: ControlPlane) -> None:
    import sqlite3
    token = token_of(cp, "alice")
    with sqlite3.connect(cp.home / "labwork.db") as db:
        rows = db.execute("SELECT hash, prefix FROM api_tokens").fetchall()
    assert rows and all(token not in h and token != p and len(p) < 16 for h, p in rows)
    assert not any(token in open(f, errors="replace").read() for f in (cp.home / "labwork.db",)
                   if f.exists())
    assert os.stat(cp.home / "token_key").st_mode & 0o777 == 0o600


def test_only_admins_manage_users_and_others_tokens(cp: ControlPlane, bob: httpx.Client) -> None:
    assert bob.post("/api/users", json={"name": "carol"}).status_code == 403
    assert bob.delete("/api/users/alice").status_code == 403
    assert bob.post("/api/tokens", json={"user": "alice"}).status_code == 403
    assert bob.get("/api/tokens", params={"all": "true"}).status_code == 403
    assert [u["name"] for u in bob.get("/api/users").json()] == ["bob"]
    r = bob.put("/api/users/bob/password", json={"password": "short"})
    assert r.status_code == 400 and r.json()["where"] == "password"
    r = cp.cli("user", "add", "Bad Name", check=False)
    assert r.returncode == 2 and "not a user name" in r.stderr
    r = cp.cli("user", "remove", "admin", check=False)
    assert r.returncode == 4 and "last administrator" in r.stderr
    r = cp.cli("token", "create", "--expires", "soon", check=False)
    assert r.returncode == 2 and "expires" in r.stderr


def test_removed_user_is_out_at_once(cp: ControlPlane) -> None:
    cp.cli("user", "add", "dave", "--password-stdin", input_text="dave-password\n")
    with client(cp, token_of(cp, "dave")) as c:
        assert c.get("/api/me").status_code == 200
        cp.cli("user", "remove", "dave")
        assert c.get("/api/me").status_code == 401
    assert "dave" not in cp.cli("user", "list").stdout


def test_livy_sessions_of_another_project_are_404(cp: ControlPlane, alice: httpx.Client, bob: httpx.Client,
                                                 projects: dict[str, dict]) -> None:
    """A session tagged with alice's project: alice sees it, bob gets 404 for it and cannot make one
    for her project (refused before any driver starts)."""
    a = projects["alice"]
    headers = {"X-Requested-By": "tests"}
    r = bob.post("/livy/sessions", json={"kind": "pyspark", "conf": {"spark.labwork.project": a["path"]}},
                 headers=headers)
    assert r.status_code == 404, r.text
    r = alice.post("/livy/sessions", json={"kind": "pyspark", "driverMemory": "512m",
                                           "conf": {"spark.labwork.project": a["path"]}}, headers=headers)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    try:
        assert [s["id"] for s in alice.get("/livy/sessions").json()["sessions"]] == [sid]
        assert bob.get("/livy/sessions").json()["sessions"] == []
        for path in (f"/livy/sessions/{sid}", f"/livy/sessions/{sid}/state", f"/livy/sessions/{sid}/log",
                     f"/livy/sessions/{sid}/statements"):
            assert bob.get(path).status_code == 404, path
        assert bob.delete(f"/livy/sessions/{sid}", headers=headers).status_code == 404
        assert alice.get(f"/livy/sessions/{sid}").status_code == 200
        # the admin sees every session
        assert httpx.get(f"{cp.url}/livy/sessions/{sid}", headers=cp.headers()).status_code == 200
    finally:
        alice.delete(f"/livy/sessions/{sid}", headers=headers)


def test_runs_and_servers_are_their_projects_members(cp: ControlPlane, alice: httpx.Client, bob: httpx.Client,
                                                     projects: dict[str, dict]) -> None:
    """A run recorded in alice's project folder: in alice's run list and readable by her; not in
    bob's list, and 404 for him by id; the admin sees it. Server lists follow the same rule."""
    import sqlite3
    from datetime import UTC, datetime
    a = projects["alice"]
    with sqlite3.connect(cp.home / "labwork.db") as db:
        for run_id in ("alicerun", "alicerun2"):
            db.execute("INSERT INTO history_runs (id, source, project, project_dir, status, history, started_at, "
                       "entry_count, error_count, info) VALUES (?, 'kernel', ?, ?, 'completed', 1, ?, 0, 0, '{}')",
                       (run_id, a["name"], a["path"], datetime.now(UTC).isoformat()))
    assert sorted(r["id"] for r in alice.get("/api/runs").json()["runs"]) == ["alicerun", "alicerun2"]
    assert alice.get("/api/runs/alicerun").status_code == 200
    assert bob.get("/api/runs").json()["runs"] == []
    assert bob.get("/api/runs", params={"project": a["name"]}).json()["runs"] == []
    assert bob.get("/api/runs", params={"project": a["path"]}).json()["runs"] == []
    assert bob.get("/api/runs/alicerun").status_code == 404
    assert bob.get("/runs/alicerun").status_code == 404
    both = {"run": ["alicerun", "alicerun2"]}
    assert "alicerun" not in bob.get("/runs/compare", params=both).text
    assert "alicerun" in alice.get("/runs/compare", params=both).text
    assert "alicerun" in [r["id"] for r in cp.runs()]
    assert bob.get("/api/servers", params={"all": "true"}).status_code == 200


def test_a_server_s_kernels_get_the_personal_token_of_who_started_it(cp: ControlPlane, alice: httpx.Client,
                                                                      projects: dict[str, dict]) -> None:
    """alice starts her project's Jupyter server: its environment (which its kernels inherit, and
    which their Spark kernels send to /livy) holds a personal token that is hers, never the
    installation's token; stopping the server keeps the token out of any file."""
    a = projects["alice"]
    r = alice.post(f"/api/projects/{a['id']}/server", json={"kind": "python", "ui": "lab", "hours": 1})
    assert r.status_code == 201, r.text
    pid = r.json()["pid"]
    try:
        environ = dict(item.split("=", 1) for item in
                       Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in item)
        token = environ.get("LABWORK_TOKEN")
        assert token and token != cp.token
        me = httpx.get(f"{cp.url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert me.status_code == 200 and me.json()["name"] == "alice", me.text
        assert token not in cp.log_tail(200_000)
    finally:
        assert alice.delete(f"/api/projects/{a['id']}/server").status_code == 200
