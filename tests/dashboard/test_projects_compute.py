"""Projects (add by folder) and Project › Compute (targets, run configurations, attach, detach,
Prepare with progress)."""
from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.support.browser import login, shot


def test_add_project_by_folder(cp, page, tmp_path):
    from labwork.project import init_project
    login(page, cp, "/")
    before = page.locator("#projects tbody tr[data-project]").count()
    not_project = tmp_path / "plain-folder"
    not_project.mkdir()
    page.fill("#add-project input[name=folder]", str(not_project))
    page.click("#add-project button[type=submit]")
    expect(page.locator("#page-error")).to_contain_text("not a labwork project")
    expect(page.locator("#add-project input[name=folder]")).to_have_value(str(not_project))
    assert page.locator("#projects tbody tr[data-project]").count() == before
    shot(page, "projects-bad-folder")
    page.fill("#add-project input[name=folder]", "relative/folder")
    page.click("#add-project button[type=submit]")
    expect(page.locator("#page-error")).to_contain_text("absolute path")

    init_project(tmp_path / "newproj", "addedFromPage")
    page.fill("#add-project input[name=folder]", str(tmp_path / "newproj"))
    page.click("#add-project button[type=submit]")
    expect(page.locator("#page-notice")).to_contain_text("Project added")
    expect(page.locator(".project-name")).to_have_text("addedFromPage")
    page.click("header.top a[href='/']")
    expect(page.locator("#projects")).to_contain_text("addedFromPage")
    expect(page.locator("#projects tbody tr[data-project]")).to_have_count(before + 1)
    shot(page, "projects")


def test_compute_attach_detach_prepare(cp, page, project):
    pid = project["id"]
    login(page, cp, f"/projects/{pid}/compute")
    expect(page.locator("#targets tr[data-target='local']")).to_be_visible()
    expect(page.locator("#runconfigs tr[data-runconfig='local']")).to_contain_text("prepared")

    # a bad target is refused with its reason, nothing written
    page.select_option("#attach-kind", "spark")
    page.fill("#attach-form input[name=name]", "cluster")
    page.fill("#attach-form input[name='spark.master']", "not-a-master")
    page.click("#attach")
    expect(page.locator("#page-error")).to_contain_text("master must be")
    assert not (Path(project["path"]) / ".labwork" / "compute" / "cluster.toml").exists()

    # errors name the form's fields and buttons, not the command line's flags
    page.fill("#attach-form input[name=name]", "../cluster")
    page.fill("#attach-form input[name='spark.master']", "local[2]")
    page.click("#attach")
    expect(page.locator("#page-error")).to_contain_text("Not attached: name: ")
    expect(page.locator("#page-error")).not_to_contain_text("--name")
    page.fill("#attach-form input[name=name]", "local")
    page.click("#attach")
    expect(page.locator("#page-error")).to_contain_text("detach it first with Detach in the row of 'local'")
    expect(page.locator("#page-error")).not_to_contain_text("labwork computetarget")
    shot(page, "compute-attach-taken-name")

    page.fill("#attach-form input[name=name]", "cluster")
    page.click("#attach")
    expect(page.locator("#page-notice")).to_contain_text("attached")
    expect(page.locator("#targets tr[data-target='cluster']")).to_contain_text("local[2]")
    expect(page.locator("#runconfigs tr[data-runconfig='cluster']")).to_contain_text("pyspark")

    # Prepare with progress
    page.locator("#runconfigs tr[data-runconfig='cluster'] button.prepare").click()
    job = page.locator("#job-cluster")
    expect(job.locator(".job-state")).to_have_text("finished", timeout=60_000)
    expect(job).to_contain_text("nothing to build")
    shot(page, "compute")

    # an unknown run configuration: a clear message, nothing started
    csrf = page.locator("#attach-form input[name=csrf_token]").input_value()
    r = page.request.post(f"{cp.url}/projects/{pid}/compute/prepare", form={"csrf_token": csrf, "runconfig": "nope"},
                          headers={"Origin": cp.url})
    assert r.status == 404 and "Not prepared" in r.text() and "no run configuration 'nope'" in r.text().replace("&#39;", "'")

    # detach
    page.once("dialog", lambda d: d.accept())
    page.locator("#targets tr[data-target='cluster'] button.detach").click()
    expect(page.locator("#page-notice")).to_contain_text("detached")
    expect(page.locator("#targets tr[data-target='cluster']")).to_have_count(0)
    expect(page.locator("#runconfigs tr[data-runconfig='cluster']")).to_have_count(0)


def test_prepare_missing_requirements_file(cp, page, project):
    """A run configuration whose requirements file is missing: the reason, and nothing built."""
    root = Path(project["path"])
    (root / ".labwork" / "runconfig" / "needsreq.toml").write_text(
        'target = "local"\n[environment]\nrequirements = "requirements.txt"\n')
    login(page, cp, f"/projects/{project['id']}/compute")
    page.locator("#runconfigs tr[data-runconfig='needsreq'] button.prepare").click()
    expect(page.locator("#page-error")).to_contain_text("does not exist")
    expect(page.locator("#job-needsreq")).to_have_count(0)


def test_prepare_updates_the_row_without_a_reload(cp, page, project):
    """A real environment build: when it finishes the row says 'prepared' (the rows are rendered by
    the one template the page uses, fetched again), with no reload of the page."""
    root = Path(project["path"])
    (root / "requirements.txt").write_text(f"# {project['name']}: nothing beyond the kernel\n")
    (root / ".labwork" / "runconfig" / "built.toml").write_text(
        'target = "local"\n[environment]\nrequirements = "requirements.txt"\n')
    login(page, cp, f"/projects/{project['id']}/compute")
    row = page.locator("#runconfigs tr[data-runconfig='built']")
    expect(row.locator(".env-state")).to_have_text("not prepared")
    row.locator("button.prepare").click()
    page.wait_for_url("**/compute#prepare-built")  # the POST's redirect loads the page once
    expect(page.locator("#job-built")).to_be_visible()
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads again
    expect(page.locator("#job-built .job-state")).to_have_text("finished", timeout=300_000)
    expect(row.locator(".env-state")).to_have_text("prepared")
    expect(page.locator("#job-built")).to_contain_text("environment ready")
    assert page.evaluate("window.__sameDocument === true")
    # the build's last lines stay in view
    assert page.evaluate("(() => { const p = document.querySelector('#job-built .progress-lines');"
                         " return p.scrollTop + p.clientHeight >= p.scrollHeight - 2; })()")
    shot(page, "compute-prepared-row")
