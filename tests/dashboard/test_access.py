"""Access: the token from the URL becomes a session cookie; a login page otherwise; CSRF checks."""
from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.dashboard.conftest import login, shot


def test_login_page_without_token(cp, page):
    page.goto(f"{cp.url}/")
    expect(page).to_have_url(f"{cp.url}/login?next=%2F")
    expect(page.locator("h1")).to_have_text("Log in")
    shot(page, "login")
    page.fill("input[name=token]", "not-the-token")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#page-error")).to_contain_text("wrong")
    page.fill("input[name=token]", cp.token)
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(f"{cp.url}/")
    expect(page.locator("h1")).to_have_text("Projects")


def test_token_in_url_sets_session_cookie_and_redirects(cp, page, context, project):
    login(page, cp, f"/projects/{project['id']}/jupyter")
    # the clean URL, without the token
    expect(page).to_have_url(f"{cp.url}/projects/{project['id']}/jupyter")
    cookie = next(c for c in context.cookies() if c["name"] == "labwork_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert cookie["expires"] == -1  # a session cookie
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
    with httpx.Client(base_url=cp.url, headers=cp.headers_for()) as http:
        assert http.get(f"/api/projects/{project['id']}/server").json()["state"] == "none"
    page.reload()
    assert page.locator("#projects tbody tr[data-project]").count() == before
    # a session cookie from another browser does not match this CSRF token
    with httpx.Client(base_url=cp.url, follow_redirects=False) as http:
        http.cookies.set("labwork_token", cp.token)
        http.cookies.set("labwork_session", "someone-else")
        r = http.post("/logout", data={"csrf_token": csrf}, headers={"Origin": cp.url})
        assert r.status_code == 403
