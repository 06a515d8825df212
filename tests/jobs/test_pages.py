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
