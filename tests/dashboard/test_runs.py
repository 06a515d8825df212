"""Run history: filters, a run's entries and charts of logged values, outputs, runs compared."""
from __future__ import annotations

import time
import uuid

import httpx
from playwright.sync_api import expect

from tests.support.browser import login, shot


def post_run(cp, project, notebook: str, losses: list[float], *, error: bool = False, accuracy: float = 0.9,
             at: float | None = None, run: str | None = None, project_dir: str | None = None) -> str:
    """A run as a kernel records it: run, entries, logged values, an output, end. `project_dir`
    other than the project's folder: a run recorded elsewhere under the project's name."""
    run = run or uuid.uuid4().hex
    t = at or time.time()
    recs = [{"id": f"{run}-r", "type": "run", "run": run, "source": "kernel", "project": project["name"],
             "project_dir": project_dir or project["path"], "notebook": notebook, "runconfig": "local",
             "history": True, "at": t}]
    codes = ["import numpy as np", "for i in range(5):\n    log('loss', ...)", "raise ValueError('bad value')"]
    for i, code in enumerate(codes if error else codes[:2]):
        failed = code.startswith("raise")
        recs.append({"id": f"{run}-e{i}", "type": "entry", "run": run, "seq": i + 1, "execution_count": i + 1,
                     "code": code, "started": t + i, "ended": t + i + 0.25, "status": "error" if failed else "ok",
                     "error_name": "ValueError" if failed else None, "error_value": "bad value" if failed else None,
                     "traceback": "Traceback ...\nValueError: bad value" if failed else None})
    for i, loss in enumerate(losses):
        recs.append({"id": f"{run}-v{i}", "type": "value", "run": run, "entry": f"{run}-e1", "name": "loss",
                     "seq": i, "value": loss, "at": t + 1 + i * 0.01})
    recs.append({"id": f"{run}-acc", "type": "value", "run": run, "name": "accuracy", "seq": 0, "value": accuracy,
                 "at": t + 1.5})
    recs.append({"id": f"{run}-lr", "type": "value", "run": run, "name": "lr", "seq": 0, "value": [0.1, 0.05, 0.01],
                 "at": t + 1.6})
    recs.append({"id": f"{run}-end", "type": "end", "run": run, "at": t + 3})
    with httpx.Client(base_url=cp.url, headers=cp.headers(), timeout=30) as http:
        r = http.post("/api/history/records", json={"records": recs})
        r.raise_for_status()
        r = http.put(f"/api/runs/{run}/artifacts/outputs/model.txt", content=b"weights: 1 2 3\n")
        r.raise_for_status()
    return run


def test_run_page_shows_chart_entries_and_outputs(cp, page, project):
    run = post_run(cp, project, "train.ipynb", [1.0, 0.6, 0.4, 0.3, 0.25], error=True)
    login(page, cp, f"/projects/{project['id']}/runs")
    row = page.locator(f"#runs tr[data-run='{run}']")
    expect(row).to_contain_text("train.ipynb")
    expect(row).to_contain_text("failed")
    shot(page, "runs-list")
    row.locator("a").first.click()
    expect(page.locator("h1")).to_contain_text(run)
    chart = page.locator("#charts .chart[data-name='loss'] svg polyline")
    expect(chart).to_have_count(1)
    assert len(chart.get_attribute("points").split()) == 5
    expect(page.locator("#charts .chart[data-name='lr'] svg polyline")).to_have_count(1)
    expect(page.locator("#values")).to_contain_text("accuracy")
    entries = page.locator("#entries")
    expect(entries).to_contain_text("import numpy as np")
    expect(entries).to_contain_text("ValueError")
    expect(entries).to_contain_text("bad value")
    expect(entries).to_contain_text("250 ms")
    shot(page, "run-chart")
    with page.expect_download() as dl:
        page.click("#artifacts a")
    assert open(dl.value.path(), "rb").read() == b"weights: 1 2 3\n"
    assert dl.value.suggested_filename == "model.txt"


def test_filters_and_bad_filters(cp, page, project):
    ok_run = post_run(cp, project, "filter-a.ipynb", [3, 2, 1])
    bad_run = post_run(cp, project, "filter-b.ipynb", [3, 2], error=True)
    old_run = post_run(cp, project, "filter-a.ipynb", [5, 4], at=time.time() - 10 * 86400)
    login(page, cp, f"/projects/{project['id']}/runs")
    page.fill("#run-filters input[name=notebook]", "filter-a.ipynb")
    page.click("#run-filters button[type=submit]")
    expect(page.locator(f"#runs tr[data-run='{ok_run}']")).to_have_count(1)
    expect(page.locator(f"#runs tr[data-run='{old_run}']")).to_have_count(1)
    expect(page.locator(f"#runs tr[data-run='{bad_run}']")).to_have_count(0)
    page.select_option("#run-filters select[name=status]", "failed")
    page.fill("#run-filters input[name=notebook]", "")
    page.click("#run-filters button[type=submit]")
    expect(page.locator(f"#runs tr[data-run='{bad_run}']")).to_have_count(1)
    expect(page.locator(f"#runs tr[data-run='{ok_run}']")).to_have_count(0)
    # by date: since yesterday leaves out the ten-day-old run
    since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    page.goto(f"{cp.url}/projects/{project['id']}/runs?notebook=filter-a.ipynb&since={since}")
    expect(page.locator(f"#runs tr[data-run='{ok_run}']")).to_have_count(1)
    expect(page.locator(f"#runs tr[data-run='{old_run}']")).to_have_count(0)
    # bad filters: a clear message
    page.goto(f"{cp.url}/runs?since=2024-02-31")
    expect(page.locator("#page-error")).to_contain_text("not a date")
    page.goto(f"{cp.url}/runs?status=exploded")
    expect(page.locator("#page-error")).to_contain_text("unknown run status")


def test_compare_runs_side_by_side(cp, page, project):
    a = post_run(cp, project, "cmp.ipynb", [1.0, 0.5, 0.2], accuracy=0.81)
    b = post_run(cp, project, "cmp.ipynb", [1.2, 0.7, 0.4, 0.35], accuracy=0.77)
    c = post_run(cp, project, "cmp.ipynb", [0.9, 0.3], accuracy=0.93)
    login(page, cp, f"/projects/{project['id']}/runs?notebook=cmp.ipynb")
    expect(page.locator("#compare-button")).to_be_disabled()
    for run in (a, b, c):
        page.check(f"#runs input[value='{run}']")
    expect(page.locator("#compare-button")).to_be_enabled()
    page.click("#compare-button")
    table = page.locator("#compare")
    expect(table.locator("thead th")).to_have_count(4)
    expect(table).to_contain_text("0.81")
    expect(table).to_contain_text("0.77")
    expect(table).to_contain_text("0.93")
    expect(page.locator("#charts .chart[data-name='loss'] polyline")).to_have_count(3)
    shot(page, "runs-compare")
    page.goto(f"{cp.url}/runs/compare?run={a}")
    expect(page.locator("#page-error")).to_contain_text("two or three runs")
    page.goto(f"{cp.url}/runs/nonexistent-run")
    expect(page.locator("#page-error")).to_contain_text("no run")


def test_an_ambiguous_run_prefix_names_the_runs_on_the_page_as_in_the_api(cp, page, project):
    stem = uuid.uuid4().hex[:8]
    a = post_run(cp, project, "dupe.ipynb", [1.0, 0.5], run=stem + "a" * 24)
    b = post_run(cp, project, "dupe.ipynb", [1.0, 0.4], run=stem + "b" * 24)
    login(page, cp, "/runs")
    api = httpx.get(f"{cp.url}/api/runs/{stem}", headers=cp.headers())
    for path in (f"/runs/{stem}", f"/runs/compare?run={stem}&run={a}", f"/runs/{stem}/outputs/outputs/model.txt"):
        answer = page.goto(cp.url + path)
        assert answer.status == 409 == api.status_code, path
        expect(page.locator("#page-error")).to_contain_text(f"run id prefix '{stem}' matches several runs")
        expect(page.locator("#page-error")).to_contain_text(f"{a}, {b}")
    assert f"{a}, {b}" in api.json()["msg"]
    # one more character is unique: the run's page, as the API's answer
    page.goto(f"{cp.url}/runs/{stem}a")
    expect(page.locator("h1")).to_contain_text(a)
    assert httpx.get(f"{cp.url}/api/runs/{stem}a", headers=cp.headers()).json()["id"] == a
    page.goto(f"{cp.url}/runs/compare?run={stem}a&run={stem}b")
    expect(page.locator("#compare thead th")).to_have_count(3)


def test_project_filter_matches_the_folder_or_the_name_on_the_page_as_in_the_api(cp, page, project, tmp_path):
    here = post_run(cp, project, "where.ipynb", [1.0, 0.5])
    elsewhere = post_run(cp, project, "where.ipynb", [1.0, 0.4], project_dir=str(tmp_path / "clone"))
    api = {ref: {r["id"] for r in cp.runs(project=ref, notebook="where.ipynb")}
           for ref in (project["name"], project["path"])}
    assert api == {project["name"]: {here, elsewhere}, project["path"]: {here}}
    # the project's own list: its folder or its name
    login(page, cp, f"/projects/{project['id']}/runs?notebook=where.ipynb")
    expect(page.locator(f"#runs tr[data-run='{elsewhere}']")).to_have_count(1)
    expect(page.locator(f"#runs tr[data-run='{here}']")).to_have_count(1)
    # /runs filtered by name, as typed in the form, then by folder
    page.goto(f"{cp.url}/runs?notebook=where.ipynb")
    page.fill("#run-filters input[name=project]", project["name"])
    page.click("#run-filters button[type=submit]")
    expect(page.locator("#runs tr[data-run]")).to_have_count(2)
    expect(page.locator(f"#runs tr[data-run='{elsewhere}']")).to_have_count(1)
    page.goto(f"{cp.url}/runs?notebook=where.ipynb&project={project['path']}")
    expect(page.locator("#runs tr[data-run]")).to_have_count(1)
    expect(page.locator(f"#runs tr[data-run='{here}']")).to_have_count(1)
    # the run recorded elsewhere still links to the registered project (by its name)
    page.goto(f"{cp.url}/runs/{elsewhere}")
    expect(page.locator(".project-bar .project-name")).to_have_text(project["name"])
