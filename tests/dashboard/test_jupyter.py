"""Project › Jupyter: start from the page, time left, Open Jupyter, Extend, Stop, server logs."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.browser import login, seconds, shot


def _server_state(cp, project) -> str:
    with httpx.Client(base_url=cp.url, headers=cp.headers()) as http:
        return http.get(f"/api/projects/{project['id']}/server").json()["state"]


@pytest.mark.parametrize("hours, properties, expected", [
    ("-3", None, "hours must be more than 0"),
    ("100000", None, "at most 720"),
    ("2", "spark.hadoop.fs.permissions.umask-mode=007\nthis line has no equals sign", "line 2: expected key=value"),
    ("2", "spark.executor.memory=4g", "set spark.executor.memory with the 'executor_memory' setting"),
])
def test_bad_configuration_changes_nothing(cp, page, project, hours, properties, expected):
    login(page, cp, f"/projects/{project['id']}/jupyter")
    if properties is not None:
        page.check("input[name=kind][value=spark]")
        expect(page.locator("#properties")).to_have_value("spark.hadoop.fs.permissions.umask-mode=007\n")
        page.fill("#properties", properties)
    page.fill("#hours", hours)
    page.click("#start")
    expect(page.locator("#page-error")).to_contain_text(expected)
    expect(page.locator("#page-error")).to_contain_text("Not started")
    # what was typed is kept, and no server was started
    expect(page.locator("#hours")).to_have_value(hours)
    assert _server_state(cp, project) == "none"
    expect(page.locator("#start")).to_be_visible()
    if hours == "-3":
        shot(page, "jupyter-bad-hours")
    if properties and "no equals" in properties:
        shot(page, "jupyter-bad-property")


def test_spark_settings_form(cp, page, project):
    login(page, cp, f"/projects/{project['id']}/jupyter")
    expect(page.locator("#spark-settings")).to_be_hidden()
    page.check("input[name=kind][value=spark]")
    expect(page.locator("#spark-settings")).to_be_visible()
    for name in ("driver_memory", "driver_cores", "executor_memory", "executor_cores", "executors",
                 "min_executors", "max_executors"):
        expect(page.locator(f"input[name={name}]")).to_be_visible()
    page.check("#no-limit")
    expect(page.locator("#hours")).to_be_disabled()
    shot(page, "jupyter-spark-config")


def _start_kernel(cp, project, display_name: str) -> None:
    """A kernel for a notebook on the project's running server, through Jupyter's own REST API."""
    with httpx.Client(base_url=cp.url, headers=cp.headers()) as http:
        server = http.get(f"/api/projects/{project['id']}/server").json()
    with httpx.Client(base_url=server["base_url"], headers={"Authorization": f"token {server['token']}"},
                      timeout=60) as jup:
        specs = jup.get("/api/kernelspecs").json()["kernelspecs"]
        names = [n for n, k in specs.items() if k["spec"]["display_name"] == display_name]
        assert names, f"no kernel spec shown as {display_name!r}: {[k['spec']['display_name'] for k in specs.values()]}"
        jup.post("/api/sessions", json={"path": "k.ipynb", "type": "notebook", "name": "k.ipynb",
                                        "kernel": {"name": names[0]}}).raise_for_status()


def test_start_open_extend_stop_logs(cp, page, context, project):
    pid = project["id"]
    # a broken run configuration file: the others still give kernels
    (Path(project["path"]) / ".labwork" / "runconfig" / "broken.toml").write_text("target = \n")
    login(page, cp, f"/projects/{pid}/jupyter")
    page.fill("#hours", "2")
    page.click("#start")
    # progress while it starts, then the running server with its time left
    expect(page.locator("#progress")).to_be_visible()
    expect(page.locator("#progress-lines")).to_contain_text("starting JupyterLab")
    shot(page, "jupyter-starting")
    expect(page.locator("#server-state")).to_have_text("running", timeout=150_000)
    time_left = page.locator("#time-left")
    expect(time_left).to_be_visible()
    left = seconds(time_left.inner_text())
    assert 2 * 3600 - 300 < left <= 2 * 3600
    expect(page.locator("#server-config")).to_have_text("Python · JupyterLab · 2 h")

    # the kernels table names a kernel as Jupyter does: "<project> <run configuration>"
    _start_kernel(cp, project, f"{project['name']} local")
    page.reload()
    kernels = page.locator("#kernels")
    expect(kernels.locator("td.kernel-name")).to_have_text(f"{project['name']} local")
    expect(kernels).not_to_contain_text("labwork-")
    expect(page.locator("#problems")).to_contain_text("broken.toml")
    shot(page, "jupyter-running")

    # the countdown moves
    page.wait_for_function("(s) => document.querySelector('#time-left').textContent.trim() !== s",
                           arg=time_left.inner_text().strip(), timeout=10_000)

    # the projects page shows the server and its time left
    projects = context.new_page()
    projects.goto(f"{cp.url}/")
    row = projects.locator(f"#projects tr[data-project='{pid}']")
    expect(row).to_contain_text("running")
    assert 2 * 3600 - 600 < seconds(row.locator(".countdown").inner_text()) <= 2 * 3600
    shot(projects, "projects-running")
    projects.close()

    # Open Jupyter: a new tab, already authenticated, JupyterLab loaded
    with context.expect_page() as new_tab:
        page.click("#open-jupyter")
    lab = new_tab.value
    lab.wait_for_selector(".jp-LabShell", timeout=120_000)
    lab.wait_for_selector(".jp-Launcher, .jp-DirListing", timeout=120_000)
    assert "/lab" in lab.url
    shot(lab, "jupyterlab-opened")
    lab.close()

    # Extend (+6 hours)
    before = seconds(time_left.inner_text())
    page.click("#extend")
    expect(page.locator("#page-notice")).to_contain_text("extended")
    after = seconds(page.locator("#time-left").inner_text())
    assert after > before + 5 * 3600
    # the limit shown is the one in force now, in the page and in Extend's answer
    expect(page.locator("#server-config")).to_have_text("Python · JupyterLab · 8 h")
    expect(page.locator("#page-notice")).to_contain_text("extended by 6 h: 8 h in all, shuts down at")
    expect(page.locator("#hours")).to_have_value("8")  # the read-only form shows the limit in force
    deadline = page.locator("#server .time-left .muted").inner_text()
    assert deadline.strip("()").removeprefix("shuts down at ") in page.locator("#page-notice").inner_text()
    shot(page, "jupyter-extended")

    # the server log, followed while running
    log = page.locator("#server-log")
    expect(log).to_contain_text("server running at")

    # Stop: the log is still there, in the page, in its own tab and as a download
    page.once("dialog", lambda d: d.accept())
    page.click("#stop")
    expect(page.locator("#page-notice")).to_contain_text("stopped", timeout=60_000)
    expect(page.locator("#server-state")).to_have_text("stopped")
    expect(page.locator("#server-log")).to_contain_text("server stopped")
    expect(page.locator("#server-log")).to_contain_text("deadline extended")
    shot(page, "jupyter-stopped-logs")
    with page.expect_download() as dl:
        page.click("#download-log")
    text = open(dl.value.path(), encoding="utf-8").read()
    assert "server stopped" in text and "starting JupyterLab" in text

    logs_page = context.new_page()
    logs_page.goto(f"{cp.url}/projects/{pid}/jupyter/logs")
    expect(logs_page.locator("#server-log")).to_contain_text("server stopped")
    shot(logs_page, "server-logs-page")
    assert _server_state(cp, project) == "stopped"


def test_extend_and_stop_without_server_say_so(cp, page, project):
    login(page, cp, f"/projects/{project['id']}/jupyter")
    csrf = page.locator("#config-form input[name=csrf_token]").input_value()
    r = page.request.post(f"{cp.url}/projects/{project['id']}/jupyter/extend", form={"csrf_token": csrf},
                          headers={"Origin": cp.url})
    assert r.status == 404 and "Not extended" in r.text() and "no Jupyter server runs" in r.text()
    # the hint speaks the page's language (what to press), not the command line's
    assert "start one with Start on the project&#39;s Jupyter page" in r.text()
    assert "labwork notebook" not in r.text()
    r = page.request.post(f"{cp.url}/projects/{project['id']}/jupyter/stop", form={"csrf_token": csrf},
                          headers={"Origin": cp.url})
    assert r.status == 404 and "Not stopped" in r.text() and "labwork notebook" not in r.text()
    page.set_content(r.text())
    shot(page, "jupyter-stop-without-server")


def test_extend_past_the_longest_limit_says_what_to_do_in_the_page(cp, page, project):
    """An error of the library with a command-line hint (`--no-limit`) gets the page's own hint."""
    login(page, cp, f"/projects/{project['id']}/jupyter")
    page.fill("#hours", "720")
    page.click("#start")
    expect(page.locator("#server-state")).to_have_text("running", timeout=150_000)
    page.click("#extend")
    error = page.locator("#page-error")
    expect(error).to_contain_text("Not extended: extend: the deadline would be more than 720 hours away")
    expect(error).to_contain_text("stop it and start it again with 'no limit' ticked")
    expect(error).not_to_contain_text("--")
    shot(page, "jupyter-extend-too-far")
    with httpx.Client(base_url=cp.url, headers=cp.headers(), timeout=60) as http:
        http.delete(f"/api/projects/{project['id']}/server").raise_for_status()


@pytest.mark.parametrize("content, expected", [
    ("target = \n", "broken.toml"),  # not TOML
    ('target = "local"\nframwork = "python"\n', "unknown key 'framwork'"),  # a bad key
])
def test_broken_runconfig_file_is_shown(cp, page, project, content, expected):
    """The Jupyter page names a broken run-configuration file, where and what; the rest still works."""
    path = Path(project["path"]) / ".labwork" / "runconfig" / "broken.toml"
    path.write_text(content)
    login(page, cp, f"/projects/{project['id']}/jupyter")
    box = page.locator("#problems")
    expect(box).to_contain_text("Broken project files")
    problem = box.locator("li.problem[data-name='broken']")
    expect(problem).to_contain_text(str(path))
    expect(problem).to_contain_text(expected)
    expect(box).to_contain_text("the others still work: local")
    expect(page.locator("#start")).to_be_enabled()
    shot(page, "jupyter-broken-runconfig" + ("-key" if "framwork" in content else ""))
    page.click(".project-bar a[href$='/compute']")
    expect(page.locator("#problems li.problem[data-name='broken']")).to_contain_text(expected)
    expect(page.locator("#runconfigs tr[data-runconfig='local']")).to_be_visible()


def test_the_pages_poll_does_not_cancel_a_submitted_form(cp, page, project):
    """Stop takes a while; meanwhile the page's poll sees the state change. It must not reload the
    page then: that cancels the form's navigation and its answer ('stopped', or an error) is lost.
    The stop's answer is held back (the real one, fetched from the control plane) until a poll has
    seen the server stopped, then delivered."""
    pid = project["id"]
    with httpx.Client(base_url=cp.url, headers=cp.headers(), timeout=150) as http:
        http.post(f"/api/projects/{pid}/server", json={"hours": 1}).raise_for_status()
    login(page, cp, f"/projects/{pid}/jupyter")
    expect(page.locator("#server-state")).to_have_text("running")
    held = []
    page.route("**/jupyter/stop", lambda route: held.append((route, route.fetch(max_redirects=0))))
    with page.expect_response(lambda r: "/jupyter/state.json" in r.url and bool(held), timeout=60_000):
        page.click("#stop", no_wait_after=True)
    route, answer = held[0]
    assert answer.status == 303
    route.fulfill(response=answer)
    expect(page.locator("#page-notice")).to_contain_text("stopped")
    expect(page.locator("#server-state")).to_have_text("stopped")


def test_a_start_that_fails_says_where_to_look_in_the_page(cp, page, project):
    """Jupyter exits at once (a `jupyterlab.py` in the project folder shadows the package, as a
    user's file of that name would): the page shows the failure with the page's hint (Server
    logs), not the CLI's `--server` flag."""
    (Path(project["path"]) / "jupyterlab.py").write_text(
        "import sys\nprint('this project stops Jupyter on purpose')\nsys.exit(3)\n")
    login(page, cp, f"/projects/{project['id']}/jupyter")
    page.click("#start")
    error = page.locator("#start-error")
    expect(error).to_contain_text("the Jupyter server did not start", timeout=150_000)
    expect(error).to_contain_text("see the whole log with Server logs")
    expect(error).not_to_contain_text("--server")
    expect(page.locator("#server-state")).to_have_text("failed")
    shot(page, "jupyter-start-failed")
