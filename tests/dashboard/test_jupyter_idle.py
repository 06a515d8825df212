"""Project › Jupyter: the idle timeout field (bad values said beside the form, a good one kept in the
server's configuration and shown while it runs)."""
from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.support.browser import login, shot


def _status(cp, project) -> dict:
    with httpx.Client(base_url=cp.url, headers=cp.headers()) as http:
        return http.get(f"/api/projects/{project['id']}/server").json()


def test_idle_timeout_field(cp, page, project):
    login(page, cp, f"/projects/{project['id']}/jupyter")
    expect(page.locator("#idle")).to_have_value("")  # off by default
    page.fill("#hours", "1")
    for bad in ("soon", "60", "0s"):
        page.fill("#idle", bad)
        page.click("#start")
        expect(page.locator("#page-error")).to_contain_text("Not started: stop when idle for: expected a duration "
                                                            "with its unit")
        expect(page.locator("#idle")).to_have_value(bad)  # what was typed is kept
        assert _status(cp, project)["state"] == "none"
    shot(page, "jupyter-bad-idle")

    page.fill("#idle", "10m")
    page.click("#start")
    expect(page.locator("#server-state")).to_have_text("running", timeout=150_000)
    assert _status(cp, project)["config"]["idle"] == 600.0
    expect(page.locator("#idle-state")).to_contain_text("Idle timeout 10 min")
    expect(page.locator("#idle")).to_have_value("10 min")  # the read-only form shows the running one's
    expect(page.locator("#server-log")).to_contain_text("stops when idle for 10 min")
    shot(page, "jupyter-idle-timeout")
    page.once("dialog", lambda d: d.accept())
    page.click("#stop")
    expect(page.locator("#server-state")).to_have_text("stopped", timeout=60_000)
