"""One access mechanism on every mount (/api, pages, /livy): sessions instead of the token in a
cookie, cross-site refusal, JSON content types, OpenAPI behind auth, GETs that change nothing."""
from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.support import ControlPlane


def port_of(cp: ControlPlane) -> str:
    return cp.url.rsplit(":", 1)[1]


def log_in(cp: ControlPlane) -> tuple[httpx.Client, str]:
    """A client holding only what a browser holds after opening the printed link: the session
    cookie. Returns (client, raw Set-Cookie header)."""
    r = httpx.get(f"{cp.url}/?token={cp.token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    set_cookie = r.headers["set-cookie"]
    client = httpx.Client(base_url=cp.url, cookies=r.cookies, timeout=60)
    return client, set_cookie


def test_login_cookie_is_a_signed_session_id_scoped_by_port(control_plane: ControlPlane) -> None:
    client, set_cookie = log_in(control_plane)
    with client:
        name, _, rest = set_cookie.partition("=")
        value = rest.split(";", 1)[0]
        assert name == f"labwork_session_{port_of(control_plane)}"
        assert control_plane.token not in set_cookie and value and "." in value
        attrs = {a.strip().lower() for a in set_cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= attrs
        assert not any(a.startswith(("max-age", "expires")) for a in attrs)  # ends with the browser
        assert client.get("/api/projects").status_code == 200  # reading with the session is fine
        # a forged or tampered session id is no session
        forged = httpx.Client(base_url=control_plane.url, cookies={name: value[:-1] + "0"})
        assert forged.get("/api/projects").status_code == 401
        # the token itself in a cookie (what earlier versions set) is no credential any more
        old = httpx.get(control_plane.url + "/api/projects", cookies={"labwork_token": control_plane.token})
        assert old.status_code == 401
        # ... and a browser still holding it is told to drop it
        assert any(h.startswith("labwork_token=;") and "max-age=0" in h.lower()
                   for h in old.headers.get_list("set-cookie"))


def test_logout_ends_the_session_server_side(control_plane: ControlPlane) -> None:
    client, _ = log_in(control_plane)
    with client:
        page = client.get("/")
        assert page.status_code == 200
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
        saved = dict(client.cookies)
        r = client.post("/logout", data={"csrf_token": csrf}, headers={"Origin": control_plane.url},
                        follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
    replay = httpx.Client(base_url=control_plane.url, cookies=saved, follow_redirects=False)
    with replay:
        assert replay.get("/api/projects").status_code == 401
        r = replay.get("/runs")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert replay.get("/livy/sessions").status_code == 401


def test_cookie_only_state_changes_from_another_site_are_refused_everywhere(
        control_plane: ControlPlane, tmp_path: Path) -> None:
    """Item 1: the curl of the report, on /livy, /api and a dashboard form, with the session a
    browser holds (and with the token cookie the report used)."""
    from labwork.project import init_project
    root = init_project(tmp_path / "csrf", "csrf").root
    evil = {"Origin": "http://127.0.0.1:8888"}
    client, _ = log_in(control_plane)
    with client:
        r = client.post("/livy/sessions", content='{"kind":"pyspark","name":"evil"}',
                        headers={**evil, "Content-Type": "text/plain"})
        assert r.status_code == 403 and "another site" in r.json()["msg"]
        r = client.post("/livy/sessions", json={"kind": "pyspark", "name": "evil"}, headers=evil)
        assert r.status_code == 403
        r = client.post("/api/projects", json={"path": str(root)}, headers=evil)
        assert r.status_code == 403 and "another site" in r.json()["msg"]
        r = client.post("/projects", data={"folder": str(root)}, headers=evil)
        assert r.status_code == 403 and "Cross-site request protection" in r.text
        # no Origin and no Referer at all: a cookie alone does not say where it comes from
        r = client.post("/api/projects", json={"path": str(root)})
        assert r.status_code == 403 and "own pages" in r.json()["msg"]
        r = client.delete("/livy/sessions/0")
        assert r.status_code == 403
        # the report's exact curl: the token in a cookie
        r = httpx.post(control_plane.url + "/livy/sessions", content='{"kind":"pyspark"}',
                       headers={**evil, "Content-Type": "text/plain",
                                "Cookie": f"labwork_token={control_plane.token}"})
        assert r.status_code in (401, 403)
        # the same from the dashboard's own origin is allowed
        ok = client.post("/api/projects", json={"path": str(root)}, headers={"Origin": control_plane.url})
        assert ok.status_code == 201, ok.text
    with control_plane.client() as api:
        names = [s["name"] for s in api.get("/livy/sessions").json()["sessions"]]
        assert "evil" not in names
        # a bearer caller from anywhere but another site's page is fine; with another site's
        # Origin even the token is refused (no page should be sending it)
        assert api.get("/livy/sessions", headers=evil).status_code == 200
        assert api.post("/api/projects", json={"path": str(root)}, headers=evil).status_code == 403
        assert api.post("/api/projects", json={"path": str(root)}).status_code == 201


def test_json_routes_require_a_json_content_type(control_plane: ControlPlane, tmp_path: Path) -> None:
    from labwork.project import init_project
    root = init_project(tmp_path / "ct", "ct").root
    with control_plane.client() as api:
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": ctype} if ctype else {}
            r = api.post("/livy/sessions", content=b'{"kind":"pyspark"}', headers=headers)
            assert r.status_code == 415, (ctype, r.text)
            assert "application/json" in r.json()["msg"]
            r = api.post("/api/projects", content=f'{{"path":"{root}"}}'.encode(), headers=headers)
            assert r.status_code == 415, (ctype, r.text)
            assert "application/json" in r.json()["msg"] and r.json()["error"] == "UnsupportedMediaType"
        assert str(root) not in [p["path"] for p in api.get("/api/projects").json()]
        # an empty body (statement cancel) needs no Content-Type: it reaches the route
        r = api.post("/livy/sessions/424242/statements/0/cancel")
        assert r.status_code == 404
        ok = api.post("/api/projects", content=f'{{"path":"{root}"}}'.encode(),
                      headers={"Content-Type": "application/json; charset=utf-8"})
        assert ok.status_code == 201


def test_openapi_and_docs_need_authentication(control_plane: ControlPlane) -> None:
    r = httpx.get(control_plane.url + "/api/openapi.json")
    assert r.status_code == 401 and "token" in r.json()["msg"]
    r = httpx.get(control_plane.url + "/api/docs", follow_redirects=False)  # a page: log in first
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fapi%2Fdocs"
    with control_plane.client() as api:
        assert "/api/status" in api.get("/api/openapi.json").json()["paths"]
        assert api.get("/api/docs").status_code == 200
    client, _ = log_in(control_plane)
    with client:
        assert client.get("/api/openapi.json").status_code == 200
    # the docs page opened with ?token= becomes a session, so its script can fetch the schema
    r = httpx.get(f"{control_plane.url}/api/docs?token={control_plane.token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/api/docs"


def test_get_never_registers_a_project_and_relative_paths_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 8: the control plane runs in a folder that holds a project `relproj`."""
    from labwork.project import init_project
    init_project(tmp_path / "cwd" / "relproj", "relproj")
    monkeypatch.chdir(tmp_path / "cwd")
    cp = ControlPlane(tmp_path / "home").start()
    try:
        with cp.client() as api:
            r = api.get("/api/projects/relproj")
            assert r.status_code == 404, r.text
            assert api.get("/api/projects/relproj/notebooks").status_code == 404
            for ref in ("%2E%2E", "~"):
                r = api.get(f"/api/projects/{ref}")
                assert r.status_code == 400, (ref, r.text)
                assert "relative path" in r.json()["msg"] and "absolute" in r.json()["msg"]
            assert api.get("/api/projects").json() == []
            # registering stays a POST
            made = api.post("/api/projects", json={"path": str(tmp_path / "cwd" / "relproj")})
            assert made.status_code == 201
            assert api.get("/api/projects/relproj").json()["name"] == "relproj"
    finally:
        cp.stop()


def test_sessions_are_kept_hashed_expire_and_survive_a_restart(db_url: str) -> None:
    """The store keeps only the hash; an expired session is gone; a new control plane process
    (a new WebSessions on the same store) still knows a live one. SQLite and PostgreSQL."""
    from sqlalchemy import select

    from labwork.auth.sessions import WebSessions
    from labwork.auth.tables import WebSessionRow
    from labwork.store.db import Store
    store = Store(db_url)
    try:
        live = WebSessions(store, "the-token", 3600)
        session_id, cookie = live.create()
        assert live.unsign(cookie) == session_id and live.unsign(cookie + "x") is None
        assert live.unsign(cookie.replace(session_id, "another")) is None
        with store.session() as s:
            hashes = [r.id_hash for r in s.scalars(select(WebSessionRow))]
        assert session_id not in hashes and len(hashes) == 1
        restarted = WebSessions(store, "the-token", 3600)
        assert restarted.alive(session_id)
        assert WebSessions(store, "another-token", 3600).unsign(cookie) is None
        restarted.end(session_id)
        assert not restarted.alive(session_id)
        assert not WebSessions(store, "the-token", 3600).alive(session_id)
        expired = WebSessions(store, "the-token", 0)
        gone, _ = expired.create()
        assert not expired.alive(gone)
        with store.session() as s:
            assert s.scalars(select(WebSessionRow)).all() == []
    finally:
        store.dispose()
