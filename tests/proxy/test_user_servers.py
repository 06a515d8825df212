"""A server per user and project, behind the control plane's one origin, against a real control
plane, real Jupyter servers and Chromium: alice (the project's owner) and bob (a member) each get
their own server at /user/<name>/<project>/; each opens only their own through the proxy (HTTP,
a kernel's websocket, JupyterLab in a browser logged in with a password, no Jupyter token in the
page); the other gets 404; the owner sees and stops the member's server, the member cannot touch
the owner's; stopping one user's server leaves the other's running."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websocket  # websocket-client

from labwork.project import init_project
from tests.support import ControlPlane, wait_for
from tests.support.browser import password_logins, shot
from tests.support.jupyter import NOTEBOOK_ENV, execute_result, stop_everything
from tests.support.jupyterlab import EDITOR, USABLE

PASSWORDS = {"alice": "alice-password", "bob": "bob-password-2"}


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("proxy-home"), env=NOTEBOOK_ENV).start()
    for name, password in PASSWORDS.items():
        plane.cli("user", "add", name, "--password-stdin", input_text=password + "\n")
    try:
        yield plane
    finally:
        stop_everything(plane)
        plane.stop()


def _client(cp: ControlPlane, user: str) -> httpx.Client:
    token = cp.cli("token", "create", "--user", user, "--name", "proxy-tests").stdout.strip()
    return httpx.Client(base_url=cp.url, headers={"Authorization": f"Bearer {token}"}, timeout=180)


@pytest.fixture(scope="module")
def alice(cp: ControlPlane) -> Iterator[httpx.Client]:
    with _client(cp, "alice") as c:
        yield c


@pytest.fixture(scope="module")
def bob(cp: ControlPlane) -> Iterator[httpx.Client]:
    with _client(cp, "bob") as c:
        yield c


@pytest.fixture(scope="module")
def project(alice: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("team-proj")
    init_project(folder, "teamproj")
    r = alice.post("/api/projects", json={"path": str(folder)})
    assert r.status_code == 201, r.text
    assert alice.post(f"/api/projects/{r.json()['id']}/members", json={"user": "bob"}).status_code == 201
    return r.json()


@pytest.fixture(scope="module")
def servers(alice: httpx.Client, bob: httpx.Client, project: dict) -> dict[str, dict]:
    out = {}
    for name, c in (("alice", alice), ("bob", bob)):
        r = c.post(f"/api/projects/{project['id']}/server", json={"ui": "lab", "hours": 1})
        assert r.status_code == 201, r.text
        out[name] = r.json()
    return out


def test_each_member_has_their_own_server_at_their_own_prefix(cp: ControlPlane, servers: dict[str, dict],
                                                              project: dict) -> None:
    a, b = servers["alice"], servers["bob"]
    assert a["id"] != b["id"] and a["port"] != b["port"]
    assert (a["user"], b["user"]) == ("alice", "bob")
    assert a["proxy_url"] == "/user/alice/teamproj/lab" and b["proxy_url"] == "/user/bob/teamproj/lab"
    assert a["base_url"].endswith("/user/alice/teamproj")  # Jupyter's own base_url is the proxied prefix


def test_the_owner_opens_her_server_through_the_proxy(cp: ControlPlane, alice: httpx.Client,
                                                      servers: dict[str, dict], project: dict) -> None:
    a = servers["alice"]
    page = alice.get(a["proxy_url"])
    assert page.status_code == 200 and "/user/alice/teamproj/static/" in page.text
    assert a["token"] not in page.text  # the page config carries no Jupyter token
    body = {"type": "file", "format": "text", "content": "saved through the proxy\n"}
    assert alice.put("/user/alice/teamproj/api/contents/note.txt", json=body).status_code in (200, 201)
    assert (Path(project["path"]) / "note.txt").read_text() == "saved through the proxy\n"
    kernel = alice.post("/user/alice/teamproj/api/kernels", json={"name": "python3"}).json()
    ws = websocket.create_connection(
        f"{cp.url.replace('http', 'ws', 1)}/user/alice/teamproj/api/kernels/{kernel['id']}/channels",
        header=[f"Authorization: {alice.headers['Authorization']}"], timeout=120)
    try:
        assert execute_result(ws, "1+1") == "2"
    finally:
        ws.close()
        alice.delete(f"/user/alice/teamproj/api/kernels/{kernel['id']}")


def test_a_cell_with_history_on_is_recorded_as_its_user(cp: ControlPlane, alice: httpx.Client,
                                                        bob: httpx.Client, project: dict,
                                                        servers: dict[str, dict]) -> None:
    """alice's labwork kernel, in her server, through the proxy: its run is hers (the kernel sends
    her personal token), and `?user=` finds it for another member of the project."""
    specs = alice.get("/user/alice/teamproj/api/kernelspecs").json()["kernelspecs"]
    name = next(n for n in specs if n.startswith("labwork-"))
    kernel = alice.post("/user/alice/teamproj/api/kernels", json={"name": name}).json()
    ws = websocket.create_connection(
        f"{cp.url.replace('http', 'ws', 1)}/user/alice/teamproj/api/kernels/{kernel['id']}/channels",
        header=[f"Authorization: {alice.headers['Authorization']}"], timeout=120)
    try:
        execute_result(ws, "%labwork history on\n1")
        assert execute_result(ws, "6*7") == "42"
    finally:
        ws.close()

    def recorded() -> list[dict]:
        return bob.get("/api/runs", params={"project": project["path"], "user": "alice"}).json()["runs"]
    wait_for(lambda: any(r["kernel_id"] == kernel["id"] for r in recorded()), timeout=120,
             what="alice's run in the history")
    run = next(r for r in recorded() if r["kernel_id"] == kernel["id"])
    assert run["user"] == "alice"
    assert bob.get("/api/runs", params={"project": project["path"], "user": "bob"}).json()["total"] == 0
    # where a kernel's Spark UI is (which /spark/ forwards to) is its user's to say, not another's
    ui = {"spark_ui_url": "http://127.0.0.1:4040"}
    wait_for(lambda: alice.post(f"/api/kernels/{kernel['id']}/spark", json=ui).status_code == 200,
             timeout=60, what="the kernel's launch record")
    assert bob.post(f"/api/kernels/{kernel['id']}/spark", json=ui).status_code == 404
    r = alice.post(f"/api/kernels/{kernel['id']}/spark", json={"spark_ui_url": "file:///etc/passwd"})
    assert r.status_code == 400 and r.json()["where"] == "spark_ui_url"
    alice.delete(f"/user/alice/teamproj/api/kernels/{kernel['id']}")


def test_nobody_else_gets_in(cp: ControlPlane, alice: httpx.Client, bob: httpx.Client,
                             servers: dict[str, dict]) -> None:
    json_accept = {"Accept": "application/json"}
    r = bob.get("/user/alice/teamproj/api/status", headers=json_accept)
    assert r.status_code == 404 and r.json()["error"] == "NotFound"
    assert bob.get("/user/alice/teamproj/lab").status_code == 404
    # the admin does not open users' servers either (as JupyterHub's default)
    assert httpx.get(f"{cp.url}/user/alice/teamproj/api/status", headers=cp.headers(), timeout=30).status_code == 404
    # anonymous: 401 for the API, the log-in page for a page
    assert httpx.get(f"{cp.url}/user/alice/teamproj/api/status", headers=json_accept,
                     timeout=30).status_code == 401
    r = httpx.get(f"{cp.url}/user/alice/teamproj/lab", timeout=30, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fuser%2Falice")
    # a websocket to someone else's kernel is refused (policy violation)
    with pytest.raises(websocket.WebSocketException):
        websocket.create_connection(f"{cp.url.replace('http', 'ws', 1)}/user/alice/teamproj/api/kernels/x/channels",
                                    header=[f"Authorization: {bob.headers['Authorization']}"], timeout=30).recv()
    # a cookie-less cross-site POST is refused before it reaches any server
    r = httpx.post(f"{cp.url}/user/bob/teamproj/api/kernels", headers={"Origin": "http://evil.example"},
                   json={}, timeout=30)
    assert r.status_code in (401, 403)
    # the server itself refuses anyone without its token: only the proxy has it
    assert httpx.get(f"{servers['alice']['base_url']}/api/status", timeout=30).status_code == 403


def test_her_logged_in_cookie_sent_from_another_site_changes_nothing_on_her_server(
        cp: ControlPlane, alice: httpx.Client, servers: dict[str, dict], project: dict) -> None:
    """A page on another site that makes alice's browser send her session cookie: labwork's guard is
    the only defence of /user and /spark here, since the proxy adds the server's token and Jupyter
    skips its own origin check for token-authenticated requests. POSTs and websockets alike."""
    here, evil = {"Origin": cp.url}, {"Origin": "http://evil.example"}
    with httpx.Client(base_url=cp.url, timeout=120, follow_redirects=False) as browser:
        r = browser.post("/login", data={"user": "alice", "password": PASSWORDS["alice"], "next": "/"})
        assert r.status_code == 303, r.text
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        kernels = "/user/alice/teamproj/api/kernels"
        before = {k["id"] for k in alice.get(kernels).json()}
        # from another site: refused with the reason, and no kernel is started
        r = browser.post(kernels, json={"name": "python3"}, headers={**evil, "Accept": "application/json"})
        assert r.status_code == 403 and "another site (http://evil.example)" in r.json()["msg"]
        assert {k["id"] for k in alice.get(kernels).json()} == before
        # the same cookie from her own pages works (so the refusal above is the origin's doing)
        kernel = browser.post(kernels, json={"name": "python3"}, headers=here)
        assert kernel.status_code == 201, kernel.text
        kid = kernel.json()["id"]
        url = f"{cp.url.replace('http', 'ws', 1)}{kernels}/{kid}/channels"
        try:
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:  # cross-site hijacking
                websocket.create_connection(url, cookie=cookie, origin="http://evil.example", timeout=60)
            assert refused.value.status_code == 403
            ws = websocket.create_connection(url, cookie=cookie, origin=cp.url, timeout=120)
            try:
                assert execute_result(ws, "6*7") == "42"
            finally:
                ws.close()
        finally:
            alice.delete(f"{kernels}/{kid}")
        # the Spark UI mount answers a cross-site POST the same way
        r = browser.post("/spark/kernel-x/jobs/job/kill/", data={"id": "0"}, headers={**evil, "Accept": "application/json"})
        assert r.status_code == 403 and "another site" in r.json()["msg"]


def test_owner_sees_and_stops_a_members_server_the_member_cannot_touch_hers(
        alice: httpx.Client, bob: httpx.Client, servers: dict[str, dict], project: dict) -> None:
    pid = project["id"]
    seen_by_alice = {s["user"] for s in alice.get("/api/servers").json() if s["project"]["id"] == pid}
    seen_by_bob = {s["user"] for s in bob.get("/api/servers").json() if s["project"]["id"] == pid}
    assert seen_by_alice == {"alice", "bob"} and seen_by_bob == {"bob"}
    assert alice.get(f"/api/projects/{pid}/server", params={"user": "bob"}).json()["id"] == servers["bob"]["id"]
    for method in ("GET", "DELETE"):
        r = bob.request(method, f"/api/projects/{pid}/server", params={"user": "alice"})
        assert r.status_code == 404, r.text
    assert bob.post(f"/api/projects/{pid}/server/extend", params={"user": "alice"}, json={"hours": 1}).status_code == 404
    assert bob.get(f"/api/projects/{pid}/server/logs", params={"user": "alice"}).status_code == 404
    # the dashboard's Stop names whose server in its form: bob naming alice, or alice naming nobody
    # (or a name far too long), gets the page of a server that does not exist, and nothing stops
    for client, name in ((bob, "alice"), (alice, "nobody"), (alice, "x" * 300)):
        r = client.post(f"/projects/{pid}/jupyter/stop", data={"user": name}, follow_redirects=False)
        assert r.status_code == 404 and f"no Jupyter server of &#39;{name[:64]}&#39;" in r.text, r.text[:2000]
        assert "Traceback" not in r.text
    assert {alice.get(f"/api/projects/{pid}/server", params={"user": u}).json()["state"]
            for u in ("alice", "bob")} == {"running"}
    # stopping bob's server leaves alice's running
    stopped = alice.delete(f"/api/projects/{pid}/server", params={"user": "bob", "reason": "stopped by alice"})
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    assert bob.get(f"/api/projects/{pid}/server").json()["stop_reason"] == "stopped by alice"
    assert alice.get(f"/api/projects/{pid}/server").json()["state"] == "running"
    assert bob.get("/user/bob/teamproj/api/status", headers={"Accept": "application/json"}).status_code == 404
    # and bob starts his again
    again = bob.post(f"/api/projects/{pid}/server", json={"ui": "lab", "hours": 1})
    assert again.status_code == 201 and again.json()["proxy_url"] == "/user/bob/teamproj/lab"
    servers["bob"] = again.json()


def test_jupyterlab_in_a_browser_through_the_proxy(browser, cp: ControlPlane, servers: dict[str, dict],
                                                   project: dict) -> None:
    """alice logs in with her password, opens her server from the dashboard's Jupyter page and
    runs a cell over the proxied websocket; bob, logged in beside her, gets 404 for her server."""
    from playwright.sync_api import expect
    with password_logins(browser, cp, {name: PASSWORDS[name] for name in ("alice", "bob")}) as pages:
        page = pages["alice"]
        page.goto(f"{cp.url}/projects/{project['id']}/jupyter")
        expect(page.locator("#other-servers tr[data-user=bob]")).to_be_visible()  # the owner sees bob's
        link = page.locator("#open-jupyter")
        assert link.get_attribute("href") == "/user/alice/teamproj/lab"
        with page.context.expect_page() as opened:
            link.click()
        lab = opened.value
        lab.wait_for_url("**/user/alice/teamproj/lab**", timeout=120_000)
        lab.locator(".jp-LauncherCard[data-category='Notebook']").first.click(timeout=120_000)
        lab.wait_for_selector(EDITOR, timeout=120_000)
        lab.wait_for_selector(USABLE, timeout=120_000)  # its kernel idle, over the proxied websocket
        output = lab.locator(".jp-OutputArea-output").first
        for _ in range(3):  # a JupyterLab still settling on a loaded machine may drop the first keys
            lab.locator(EDITOR).first.click()
            lab.keyboard.press("Control+A")
            lab.keyboard.type("6*7")
            lab.keyboard.press("Control+Enter")  # run the cell, stay on it
            try:
                output.wait_for(timeout=40_000)
                break
            except Exception:  # noqa: BLE001 - Playwright's TimeoutError: type and run again
                continue
        expect(output).to_contain_text("42", timeout=60_000)
        assert servers["alice"]["token"] not in lab.content()
        shot(lab, "proxy-jupyterlab-alice")
        other = pages["bob"].goto(f"{cp.url}/user/alice/teamproj/lab")
        assert other is not None and other.status == 404
