"""Project › Jupyter: recent notebooks (Open in Jupyter starts the server with the configuration the
notebook last ran with) and the environment check's alert."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.support.browser import login, shot
from tests.dashboard.test_notebooks import write_notebook


def test_recent_notebook_opens_with_its_last_configuration(cp, page, context, project):
    root = Path(project["path"])
    write_notebook(root / "older.ipynb")
    write_notebook(root / "latest.ipynb")
    with httpx.Client(base_url=cp.url, headers=cp.headers(), timeout=30) as http:
        for nb, cfg in (("older.ipynb", {"kind": "python", "ui": "lab", "hours": 1}),
                        ("latest.ipynb", {"kind": "python", "ui": "classic", "hours": 3})):
            http.post("/api/kernels/launched", json={"project_path": project["path"], "runconfig": "local",
                                                     "notebook": nb, "server_config": cfg}).raise_for_status()
    login(page, cp, f"/projects/{project['id']}/jupyter")
    rows = page.locator("#recent tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("latest.ipynb")  # newest first
    expect(rows.nth(0)).to_contain_text("classic Notebook · 3 h")
    expect(rows.nth(1)).to_contain_text("older.ipynb")
    shot(page, "jupyter-recent")
    with context.expect_page() as new_tab:
        rows.nth(0).locator("button.open-notebook").click()
    nb_tab = new_tab.value
    # the new tab shows progress, then goes on to the notebook in the classic UI, through the
    # control plane (the admin's own server; no Jupyter token in the address)
    nb_tab.wait_for_url(f"{cp.url}/user/admin/**/notebooks/latest.ipynb", timeout=150_000)
    assert "token=" not in nb_tab.url
    nb_tab.wait_for_selector("#main-panel, .jp-NotebookPanel", timeout=120_000)
    shot(nb_tab, "classic-notebook-opened")
    nb_tab.close()
    # The Jupyter page polls the server's state and reloads itself when it changes (here: none ->
    # running). A page.goto() of ours would race that reload (net::ERR_ABORTED): wait for the
    # page's own reload instead; the locator follows it.
    expect(page.locator("#server-state")).to_have_text("running", timeout=30_000)
    expect(page.locator("#server")).to_contain_text("classic Notebook · 3 h")
    with httpx.Client(base_url=cp.url, headers=cp.headers(), timeout=60) as http:
        http.delete(f"/api/projects/{project['id']}/server").raise_for_status()


def test_open_notebook_refuses_paths_outside(cp, page, project):
    login(page, cp, f"/projects/{project['id']}/jupyter")
    csrf = page.locator("#config-form input[name=csrf_token]").input_value()
    r = page.request.post(f"{cp.url}/projects/{project['id']}/jupyter/open",
                          form={"csrf_token": csrf, "notebook": "../../etc/passwd"}, headers={"Origin": cp.url})
    assert r.status == 403 and "Not opened" in r.text()
    with httpx.Client(base_url=cp.url, headers=cp.headers()) as http:
        assert http.get(f"/api/projects/{project['id']}/server").json()["state"] == "none"


def _conflicted_environment(cp, project) -> None:
    """A prepared environment of run configuration 'conflicted' holding conflicting libraries."""
    from labwork.kernels.environments import environment_for
    from labwork.project.files import load_project
    from labwork.settings import Settings
    root = Path(project["path"])
    (root / "requirements.txt").write_text("fakepkg\n")
    (root / ".labwork" / "runconfig" / "conflicted.toml").write_text(
        'target = "local"\n[environment]\nrequirements = "requirements.txt"\n')
    env = environment_for(load_project(root), "conflicted", Settings(home=cp.home))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(env.path)],
                   check=True)
    site = next(env.path.glob("lib/python3*/site-packages"))
    for name, requires in (("fakepkg", "ipykernel>=999"), ("plainpkg", "no-such-library-xyz")):
        meta = site / f"{name}-1.0.dist-info"
        meta.mkdir()
        (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\nRequires-Dist: {requires}\n")
        (meta / "RECORD").write_text("")
    (env.path / ".ready").write_text("{}")


def test_environment_alert_marks_jupyter_breaking_conflicts(cp, page, project):
    _conflicted_environment(cp, project)
    login(page, cp, f"/projects/{project['id']}/jupyter")
    alert = page.locator("#env-conflicts")
    expect(alert).to_be_visible(timeout=120_000)  # the check runs in the background, then the alert shows
    expect(alert).to_contain_text("can break Jupyter")
    expect(alert.locator(".badge.breaks").first).to_be_visible()
    expect(alert).to_contain_text("fakepkg")
    shot(page, "jupyter-env-alert")
    page.click("#env-full-list")  # the full list, one click away
    table = page.locator("table.env-conflicts")
    expect(table).to_contain_text("fakepkg")
    expect(table).to_contain_text("plainpkg")
    expect(table.locator("tr.breaks")).to_contain_text("fakepkg")
    shot(page, "environment-conflicts")
    # cached: the next visit shows the alert at once, without a new pip check
    page.goto(f"{cp.url}/projects/{project['id']}/jupyter")
    expect(page.locator("#env-conflicts")).to_be_visible(timeout=2_000)
