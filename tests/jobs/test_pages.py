"""The Jobs pages in Chromium: Run as job from Notebooks, the create form, Run now with
parameters, the run's page with its output notebook, disable/enable, a bad schedule in the form."""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.jobs.conftest import code_cell, write_notebook
from tests.support.browser import login, shot

pytestmark = pytest.mark.slow


def test_run_as_job_create_run_now_and_the_run_page(cp, page, project) -> None:
    root = Path(project["path"])
    write_notebook(root / "report.ipynb", code_cell("n = 1", ["parameters"]),
                   code_cell("print('n squared is', n * n)"))
    login(page, cp, f"/projects/{project['id']}/notebooks?path=report.ipynb")
    page.click("a.run-as-job")
    expect(page.locator("#job-form input[name=name]")).to_have_value("report")
    expect(page.locator("#job-notebook")).to_have_value("report.ipynb")

    page.fill("#job-form input[name=schedule]", "not a cron")  # a bad field: the form again, the error beside it
    page.click("#save-job")
    expect(page.locator("#page-error")).to_contain_text("Not created")
    expect(page.locator("#page-error")).to_contain_text("not a cron")
    expect(page.locator("#jobs")).to_have_count(0)

    page.fill("#job-form input[name=schedule]", "0 6 * * *")
    page.fill("#job-form input[name=timezone]", "Europe/Berlin")
    page.select_option("#job-form select[name=runconfig]", "local")
    page.fill("#job-form textarea[name=parameters]", "n=2")
    page.click("#save-job")
    expect(page.locator("#page-notice")).to_contain_text("Job created")
    row = page.locator("#jobs tr[data-job=report]")
    expect(row).to_contain_text("0 6 * * *")
    expect(row.locator(".next-run")).to_contain_text("UTC")
    expect(row.locator(".last-status")).to_contain_text("never run")

    row.locator("button.toggle-schedule").click()  # disable, then enable again
    expect(page.locator("#page-notice")).to_contain_text("Schedule disabled")
    expect(page.locator("#jobs tr[data-job=report] .next-run")).to_have_text("—")
    page.locator("#jobs tr[data-job=report] button.toggle-schedule").click()
    expect(page.locator("#page-notice")).to_contain_text("Schedule enabled")

    page.locator("#jobs tr[data-job=report] textarea[name=parameters]").fill("n=7")
    page.locator("#jobs tr[data-job=report] button.run-job").click()
    expect(page.locator("h1")).to_contain_text("of report")
    for _ in range(240):  # the page shows the run as it stands; reload until it has ended
        if page.locator("#run-status").inner_text() in ("completed", "failed"):
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#run-parameters")).to_contain_text("n=7")
    expect(page.locator("#run-log")).to_contain_text("[labwork]")
    frame = page.frame_locator("#output-preview")
    expect(frame.locator("body")).to_contain_text("n squared is 49", timeout=60_000)
    shot(page, "job-run")
    with page.expect_download() as dl:
        page.click("#download-output")
    assert "n squared is 49" in Path(dl.value.path()).read_text()

    page.goto(f"{cp.url}/projects/{project['id']}/jobs")
    expect(page.locator("#jobs tr[data-job=report] .last-status")).to_contain_text("completed")
    shot(page, "jobs")


def test_run_as_job_beside_recent_notebooks(cp, page, project) -> None:
    """A notebook that ran (recorded as the kernel launcher records it) has Run as job in Recent
    notebooks; the job made from it without a run configuration takes the one it last ran with."""
    root = Path(project["path"])
    write_notebook(root / "recent.ipynb", code_cell("print(1)"))
    cp.request("POST", "/api/kernels/launched", json={"project_path": str(root), "runconfig": "local",
                                                       "notebook": "recent.ipynb",
                                                       "server_config": {"kind": "python"}})
    login(page, cp, f"/projects/{project['id']}/jupyter")
    page.locator("#recent tr[data-notebook='recent.ipynb'] a.run-as-job").click()
    expect(page.locator("#job-notebook")).to_have_value("recent.ipynb")
    page.click("#save-job")
    expect(page.locator("#jobs tr[data-job=recent]")).to_contain_text(f"{project['name']} local")


def test_edit_a_job_through_its_form(cp, page, project) -> None:
    """Edit changes the schedule and the parameters (the Jobs page shows them); a bad value is
    shown beside its field, with what was typed kept, and nothing is saved."""
    root = Path(project["path"])
    write_notebook(root / "edited.ipynb", code_cell("n = 1\nxs = []", ["parameters"]))
    cp.request("POST", f"/api/projects/{project['id']}/jobs",
               json={"name": "edited", "notebook": "edited.ipynb", "runconfig": "local",
                     "schedule": "0 6 * * *", "parameters": {"n": 1}})
    login(page, cp, f"/projects/{project['id']}/jobs")
    page.locator("#jobs tr[data-job=edited] a.edit-job").click()
    expect(page.locator("#job-form-card h2")).to_have_text("Edit job edited")
    expect(page.locator("#job-form input[name=schedule]")).to_have_value("0 6 * * *")
    expect(page.locator("#job-form textarea[name=parameters]")).to_have_value("n=1")

    page.fill("#job-form input[name=schedule]", "61 * * * *")  # no minute 61
    page.fill("#job-form textarea[name=parameters]", "n=5")
    page.click("#save-job")
    expect(page.locator("#page-error")).to_contain_text("Not saved")
    beside = page.locator("#job-form label:has(input[name=schedule]) .field-error")
    expect(beside).to_contain_text("'61 * * * *'")
    expect(page.locator("#job-form .field-error")).to_have_count(1)
    expect(page.locator("#job-form input[name=schedule]")).to_have_value("61 * * * *")
    expect(page.locator("#job-form textarea[name=parameters]")).to_have_value("n=5")
    assert cp.request("GET", f"/api/projects/{project['id']}/jobs/edited")["schedule"] == "0 6 * * *"

    page.fill("#job-form input[name=schedule]", "30 7 * * *")
    page.fill("#job-form textarea[name=parameters]", "n 5")  # not k=v
    page.click("#save-job")
    beside = page.locator("#job-form label:has(textarea[name=parameters]) .field-error")
    expect(beside).to_contain_text("'n 5' is not k=v")
    expect(page.locator("#job-form label:has(input[name=schedule]) .field-error")).to_have_count(0)

    page.fill("#job-form textarea[name=parameters]", "n=5\nxs=[1, 2]")
    page.click("#save-job")
    expect(page.locator("#page-notice")).to_contain_text("Job saved")
    row = page.locator("#jobs tr[data-job=edited]")
    expect(row).to_contain_text("30 7 * * *")
    expect(row.locator("textarea[name=parameters]")).to_have_value("n=5\nxs=[1, 2]\n")
    expect(page.locator("#job-form .field-error")).to_have_count(0)
    shot(page, "job-edited")
    saved = cp.request("GET", f"/api/projects/{project['id']}/jobs/edited")
    assert saved["schedule"] == "30 7 * * *" and saved["parameters"] == {"n": 5, "xs": [1, 2]}
