"""The dashboard's icon: linked from every page, and /favicon.ico answered (browsers ask for it on
their own) without the token and without a 404."""
from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.support.browser import login, shot


def test_every_page_links_the_icon(cp, page, project):
    login(page, cp, f"/projects/{project['id']}/jupyter")
    icon = page.locator("head link[rel=icon]")
    expect(icon).to_have_attribute("type", "image/svg+xml")
    r = page.request.get(cp.url + icon.get_attribute("href"))
    assert r.status == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert r.body().lstrip().startswith(b"<svg")
    # the icon as the browser draws it
    page.set_content(f"<img id='icon' src='{cp.url}{icon.get_attribute('href')}' width='64' height='64'>")
    page.wait_for_function("document.getElementById('icon').complete && "
                           "document.getElementById('icon').naturalWidth > 0")
    shot(page, "favicon")
    # an error page of the dashboard links it too
    page.goto(f"{cp.url}/projects/999999/jupyter")
    expect(page.locator("head link[rel=icon]")).to_have_count(1)


def test_favicon_ico_is_answered_without_the_token(cp, browser):
    with httpx.Client(base_url=cp.url, follow_redirects=False) as http:  # no token, no cookie
        r = http.get("/favicon.ico")
        assert r.status_code in (301, 308) and r.headers["location"] == "/static/favicon.svg"
        icon = http.get(r.headers["location"])
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
        assert http.head("/favicon.ico").status_code in (301, 308)
    fresh = browser.new_context()
    try:
        tab = fresh.new_page()
        response = tab.goto(f"{cp.url}/favicon.ico")
        assert response is not None and response.status == 200
        assert response.url.endswith("/static/favicon.svg")
    finally:
        fresh.close()
