"""Spark: a real gateway session on the Spark page and the project's Jupyter page; its log; kill."""
from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.browser import login, shot


def test_spark_session_listed_logged_and_killed(cp, page, project):
    pytest.importorskip("pyspark")
    with httpx.Client(base_url=cp.url, headers=cp.headers(), timeout=60) as http:
        r = http.post("/livy/sessions", json={"kind": "pyspark", "name": f"dash-{project['id']}",
                                              "conf": {"spark.labwork.project": project["path"]}})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        deadline = time.monotonic() + 240
        state = None
        while time.monotonic() < deadline:
            state = http.get(f"/livy/sessions/{sid}/state").json()["state"]
            if state not in ("not_started", "starting"):
                break
            time.sleep(1)
        assert state == "idle", f"session state {state}: {http.get(f'/livy/sessions/{sid}/log').text[-2000:]}"

    login(page, cp, "/spark")
    row = page.locator(f"#spark-sessions tr[data-id='{sid}']")
    expect(row).to_contain_text("idle")
    expect(row).to_contain_text("pyspark")
    expect(row).to_contain_text(project["name"])
    expect(row.locator("code")).to_contain_text("local-")  # the application id
    ui = row.locator("a", has_text="Spark UI")
    href = ui.get_attribute("href")
    assert href.startswith("/spark/"), href  # through the control plane, from any browser
    assert page.request.get(f"{cp.url}{href}jobs/").status == 200
    shot(page, "spark")

    # the project's Jupyter page lists it too, with its Spark UI and session log
    page.goto(f"{cp.url}/projects/{project['id']}/jupyter")
    expect(page.locator("#spark-sessions")).to_contain_text(f"dash-{project['id']}")
    expect(page.locator("#spark-sessions a", has_text="Spark UI")).to_be_visible()

    page.goto(f"{cp.url}/spark/sessions/{sid}/log")
    expect(page.locator("#spark-log")).not_to_be_empty()
    shot(page, "spark-session-log")

    page.goto(f"{cp.url}/spark")
    page.once("dialog", lambda d: d.accept())
    page.locator(f"#spark-sessions tr[data-id='{sid}'] button.kill").click()
    expect(page.locator("#page-notice")).to_contain_text("Killed", timeout=120_000)
    expect(page.locator(f"#spark-sessions tr[data-id='{sid}'] button.kill")).to_have_count(0)
    page.goto(f"{cp.url}/spark/sessions/999999/log")
    expect(page.locator("#page-error")).to_be_visible()
