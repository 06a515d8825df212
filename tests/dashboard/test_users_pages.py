"""Two users in Chromium: each logs in with their password and sees only their projects; the
other's project pages are 404; an owner adds a member on the Members page and removes them; a
member sees the project but no add/remove controls; log-out ends the session."""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support import ControlPlane
from tests.support.browser import shot


@pytest.fixture
def people(cp: ControlPlane, tmp_path: Path) -> dict[str, dict]:
    """Two fresh users, each with a project they registered (so they own it)."""
    import httpx

    from labwork.project import init_project
    out = {}
    for who in ("ann", "ben"):
        name = f"{who}{secrets.token_hex(3)}"
        password = f"{name}-password"
        cp.cli("user", "add", name, "--password-stdin", input_text=password + "\n")
        token = cp.cli("token", "create", "--user", name).stdout.strip()
        folder = tmp_path / name
        init_project(folder, f"{name}-proj")
        r = httpx.post(f"{cp.url}/api/projects", json={"path": str(folder)},
                       headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
        out[who] = {"name": name, "password": password, "project": r.json()}
    return out


def log_in(page, cp: ControlPlane, user: dict) -> None:  # noqa: ANN001 - a Playwright Page
    page.goto(f"{cp.url}/login")
    page.fill("#login-form input[name=user]", user["name"])
    page.fill("#login-form input[name=password]", user["password"])
    page.click("#login-form button[type=submit]")
    expect(page.locator("#whoami")).to_have_text(user["name"])


def test_two_users_each_see_their_projects_and_owners_manage_members(cp, browser, people) -> None:
    ann, ben = people["ann"], people["ben"]
    a_ctx, b_ctx = browser.new_context(), browser.new_context()
    try:
        a, b = a_ctx.new_page(), b_ctx.new_page()
        # a wrong password: the form again, nothing said about which part was wrong
        a.goto(f"{cp.url}/login")
        a.fill("#login-form input[name=user]", ann["name"])
        a.fill("#login-form input[name=password]", "not-it")
        a.click("#login-form button[type=submit]")
        expect(a.locator("#page-error")).to_have_text("That user name or password is wrong.")
        log_in(a, cp, ann)
        log_in(b, cp, ben)
        expect(a.get_by_text(ann["project"]["name"])).to_be_visible()
        expect(a.get_by_text(ben["project"]["name"])).to_have_count(0)
        expect(b.get_by_text(ann["project"]["name"])).to_have_count(0)
        shot(a, "users-projects")
        # ben cannot open ann's project pages: 404, as for an unknown project
        pid = ann["project"]["id"]
        for path in (f"/projects/{pid}/jupyter", f"/projects/{pid}/members", f"/projects/{pid}/runs"):
            response = b.goto(f"{cp.url}{path}")
            assert response is not None and response.status == 404, path
        # ann (owner) adds ben on the Members page
        a.goto(f"{cp.url}/projects/{pid}/members")
        expect(a.locator(f"#members tr[data-user='{ann['name']}'] .role")).to_have_text("owner")
        a.fill("#member-add input[name=user]", ben["name"])
        a.click("#member-add button[type=submit]")
        expect(a.locator("#page-notice")).to_have_text("Member added.")
        expect(a.locator(f"#members tr[data-user='{ben['name']}'] .role")).to_have_text("member")
        shot(a, "users-members")
        # ben, a member: sees the project and its members, but no controls to change them
        b.goto(f"{cp.url}/")
        expect(b.get_by_text(ann["project"]["name"])).to_be_visible()
        response = b.goto(f"{cp.url}/projects/{pid}/members")
        assert response is not None and response.status == 200
        expect(b.locator("#member-add")).to_have_count(0)
        expect(b.locator("#members button")).to_have_count(0)
        # an unknown user is said beside the form
        a.fill("#member-add input[name=user]", "nobody-here")
        a.click("#member-add button[type=submit]")
        expect(a.locator("#page-error")).to_contain_text("no user 'nobody-here'")
        # ann removes ben: his next page is a 404
        a.goto(f"{cp.url}/projects/{pid}/members")
        a.locator(f"#members tr[data-user='{ben['name']}'] button").click()
        expect(a.locator("#page-notice")).to_have_text("Member removed.")
        response = b.goto(f"{cp.url}/projects/{pid}/jupyter")
        assert response is not None and response.status == 404
        # log-out ends ben's session
        b.goto(f"{cp.url}/")
        b.click("form.logout button")
        expect(b).to_have_url(f"{cp.url}/login")
        b.goto(f"{cp.url}/")
        expect(b).to_have_url(f"{cp.url}/login?next=%2F")
    finally:
        a_ctx.close()
        b_ctx.close()
