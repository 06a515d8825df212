"""Access: the token from the URL becomes a server-side session; a login page otherwise; CSRF
checks; a page on another port of 127.0.0.1 can neither act nor learn the token."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from playwright.sync_api import expect

from tests.support.browser import login, shot


def test_login_page_without_token(cp, page):
    page.goto(f"{cp.url}/")
    expect(page).to_have_url(f"{cp.url}/login?next=%2F")
    expect(page.locator("h1")).to_have_text("Log in")
    shot(page, "login")
    page.click("#token-login summary")  # the token log-in, beside user + password
    page.fill("#token-form input[name=token]", "not-the-token")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#page-error")).to_contain_text("wrong")
    page.fill("#token-form input[name=token]", cp.token)  # the wrong token's page keeps it open
    page.click("#token-form button[type=submit]")
    expect(page).to_have_url(f"{cp.url}/")
    expect(page.locator("h1")).to_have_text("Projects")


def test_token_in_url_sets_session_cookie_and_redirects(cp, page, context, project):
    login(page, cp, f"/projects/{project['id']}/jupyter")
    # the clean URL, without the token
    expect(page).to_have_url(f"{cp.url}/projects/{project['id']}/jupyter")
    port = cp.url.rsplit(":", 1)[1]
    cookies = context.cookies()
    assert [c["name"] for c in cookies] == [f"labwork_session_{port}"]
    cookie = cookies[0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert cookie["expires"] == -1  # a session cookie
    assert cp.token not in cookie["value"]
    expect(page.locator(".project-name")).to_have_text(project["name"])


def test_wrong_token_in_url_shows_login(cp, page):
    page.goto(f"{cp.url}/?token=wrong")
    expect(page.locator("#page-error")).to_contain_text("wrong")
    expect(page.locator("h1")).to_have_text("Log in")


def test_every_page_and_action_checks_the_token(cp, project):
    pid = project["id"]
    with httpx.Client(base_url=cp.url, follow_redirects=False) as http:
        for path in ("/", f"/projects/{pid}/jupyter", f"/projects/{pid}/notebooks", f"/projects/{pid}/compute",
                     f"/projects/{pid}/runs", "/runs", "/spark", f"/projects/{pid}/jupyter/logs"):
            r = http.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
        for path in (f"/projects/{pid}/jupyter/state.json", f"/projects/{pid}/jupyter/logs.json"):
            assert http.get(path).status_code == 401, path
        r = http.post(f"/projects/{pid}/jupyter/start", data={"kind": "python", "hours": "1"})
        assert r.status_code == 401
        r = http.get("/static/dashboard.css")  # assets carry no data
        assert r.status_code == 200


def test_csrf_refusal(cp, page, project):
    """A POST without the session's CSRF token, or from another origin, is refused; nothing changes."""
    login(page, cp, "/")
    before = page.locator("#projects tbody tr[data-project]").count()
    folder = project["path"]
    # no CSRF token (the browser sends the cookies)
    r = page.request.post(f"{cp.url}/projects", form={"folder": folder})
    assert r.status == 403 and "Cross-site request protection" in r.text()
    # a wrong CSRF token
    r = page.request.post(f"{cp.url}/projects", form={"folder": folder, "csrf_token": "0" * 64})
    assert r.status == 403
    # the right CSRF token from a foreign origin
    csrf = page.locator("#add-project input[name=csrf_token]").input_value()
    r = page.request.post(f"{cp.url}/projects", form={"folder": folder, "csrf_token": csrf},
                          headers={"Origin": "http://evil.example"})
    assert r.status == 403 and "another site" in r.text()
    # the server was not started by a forged POST either
    r = page.request.post(f"{cp.url}/projects/{project['id']}/jupyter/start", form={"kind": "python", "hours": "1"})
    assert r.status == 403
    with httpx.Client(base_url=cp.url, headers=cp.headers()) as http:
        assert http.get(f"/api/projects/{project['id']}/server").json()["state"] == "none"
    page.reload()
    assert page.locator("#projects tbody tr[data-project]").count() == before
    # another browser's session does not match this CSRF token
    port = cp.url.rsplit(":", 1)[1]
    r = httpx.get(f"{cp.url}/?token={cp.token}", follow_redirects=False)
    with httpx.Client(base_url=cp.url, follow_redirects=False, cookies=r.cookies) as http:
        assert f"labwork_session_{port}" in http.cookies
        r = http.post("/logout", data={"csrf_token": csrf}, headers={"Origin": cp.url})
        assert r.status_code == 403


class _Attacker(BaseHTTPRequestHandler):
    """Another site on 127.0.0.1: serves `page`, records the Cookie header of every request."""

    page = b""
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(self.headers.get("Cookie") or "")
        body = self.page if self.path.startswith("/evil") else b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


ATTACK = """<!doctype html><html><body>
<form id="f" method="post" action="{cp}/projects" target="sink">
  <input name="folder" value="{folder}"></form>
<form id="g" method="post" action="{cp}/livy/sessions" enctype="text/plain" target="sink2">
  <input name='{{"kind":"pyspark","name":"evil-form","x":"' value='"}}'></form>
<iframe name="sink"></iframe><iframe name="sink2"></iframe>
<script>
window.results = [];
async function attempt(url, opts) {{
  try {{ const r = await fetch(url, Object.assign({{credentials: "include", mode: "no-cors"}}, opts));
         window.results.push(url + " " + r.type); }}
  catch (e) {{ window.results.push(url + " error " + e); }}
}}
(async () => {{
  await attempt("{cp}/livy/sessions", {{method: "POST", headers: {{"Content-Type": "text/plain"}},
                                        body: JSON.stringify({{kind: "pyspark", name: "evil-fetch"}})}});
  await attempt("{cp}/api/projects", {{method: "POST", headers: {{"Content-Type": "text/plain"}},
                                       body: JSON.stringify({{path: "{folder}"}})}});
  await attempt("{me}/cookie-probe", {{}});
  document.getElementById("f").submit();
  document.getElementById("g").submit();
  window.done = true;
}})();
</script></body></html>"""


def test_page_on_another_port_cannot_act_or_learn_the_token(cp, context, page, project, tmp_path):
    """Items 1 and 2 in a real browser: the dashboard is logged in in the same browser context; a
    page served from another port of 127.0.0.1 tries fetch and form POSTs at /livy and /api and the
    dashboard; nothing is created, and that server never receives the token in a cookie."""
    from labwork.project import init_project
    victim = init_project(tmp_path / "victim", "victim").root
    login(page, cp, "/")
    expect(page.locator("h1")).to_have_text("Projects")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    me = f"http://127.0.0.1:{server.server_address[1]}"
    _Attacker.seen = []
    _Attacker.page = ATTACK.format(cp=cp.url, me=me, folder=json.dumps(str(victim))[1:-1]).encode()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        evil = context.new_page()
        responses = []
        evil.on("response", lambda r: responses.append((r.url, r.status)))
        evil.goto(f"{me}/evil")
        evil.wait_for_function("window.done === true")
        # wait (no timing asserted) until the four requests at the control plane were answered
        for _ in range(300):
            if sum(1 for u, _s in responses if u.startswith(cp.url)) >= 4:
                break
            evil.wait_for_timeout(100)
        answered = sorted((u.replace(cp.url, ""), s) for u, s in responses if u.startswith(cp.url))
        assert answered == [("/api/projects", 403), ("/livy/sessions", 403), ("/livy/sessions", 403),
                            ("/projects", 403)], answered
    finally:
        server.shutdown()
        server.server_close()
    # the browser did send the other server our cookies (they are not scoped by port) ...
    port = cp.url.rsplit(":", 1)[1]
    assert any(f"labwork_session_{port}=" in c for c in _Attacker.seen), _Attacker.seen
    # ... but none holds the token
    assert all(cp.token not in c for c in _Attacker.seen)
    with httpx.Client(base_url=cp.url, headers=cp.headers()) as http:
        names = [s["name"] for s in http.get("/livy/sessions").json()["sessions"]]
        assert not any(n and n.startswith("evil") for n in names), names
        assert str(victim) not in [p["path"] for p in http.get("/api/projects").json()]


def test_two_control_planes_on_127_0_0_1_keep_their_own_sessions(cp, context, page, tmp_path):
    """The cookie's name carries the port: logging in to a second control plane in the same browser
    does not log the first one out (cookies are not scoped by port)."""
    from tests.support import ControlPlane
    other = ControlPlane(tmp_path / "home2").start()
    try:
        login(page, cp, "/")
        expect(page.locator("h1")).to_have_text("Projects")
        second = context.new_page()
        login(second, other, "/")
        expect(second.locator("h1")).to_have_text("Projects")
        names = sorted(c["name"] for c in context.cookies())
        assert names == sorted({f"labwork_session_{cp.url.rsplit(':', 1)[1]}",
                                f"labwork_session_{other.url.rsplit(':', 1)[1]}"})
        page.goto(f"{cp.url}/runs")
        expect(page).to_have_url(f"{cp.url}/runs")
        second.goto(f"{other.url}/runs")
        expect(second).to_have_url(f"{other.url}/runs")
    finally:
        other.stop()
