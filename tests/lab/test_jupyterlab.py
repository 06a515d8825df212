"""labwork inside JupyterLab, in Chromium: time left and Extend in the status bar, the warning
before a near deadline, an unsaved edit saved when the deadline stops the server, a kernel's
recorded end shown as a notification, and the classic Notebook 7 UI loading the extension."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from labwork.kernels.ends import KernelEnd, record_end
from tests.lab.conftest import WARN_BEFORE_S
from tests.support import ControlPlane, wait_for
from tests.support.browser import shot
from tests.support.jupyter import jupyter
from tests.support.jupyterlab import EDITOR, TIME_LEFT, open_notebook, toast_with

pytestmark = pytest.mark.usefixtures("browser")


def _start(cp: ControlPlane, project: dict[str, Any], **config: Any) -> dict[str, Any]:
    with cp.client() as c:
        r = c.post(f"/api/projects/{project['id']}/server", json=config)
    assert r.status_code == 201, r.text
    return r.json()


def _stop(cp: ControlPlane, project: dict[str, Any]) -> None:
    with cp.client() as c:
        c.delete(f"/api/projects/{project['id']}/server")


def _left_s(text: str) -> int:
    """'5 h 12 min left · local' -> seconds (to the minute)."""
    m = re.search(r"(?:(\d+) h )?(\d+) min left", text)
    assert m, f"not a time left: {text!r}"
    return int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60


def _ends_file(server: dict[str, Any], cp: ControlPlane) -> Path:
    """The server's kernel-ends file, as its process has it in its environment."""
    environ = Path(f"/proc/{server['pid']}/environ").read_bytes().split(b"\0")
    for item in environ:
        if item.startswith(b"LABWORK_KERNEL_ENDS="):
            return Path(item.split(b"=", 1)[1].decode())
    raise AssertionError("the server has no LABWORK_KERNEL_ENDS")


@pytest.fixture(scope="module")
def running(lab_cp: ControlPlane, make_project) -> Any:  # noqa: ANN001
    """One project's JupyterLab with a 2-hour deadline, shared by this module's tests."""
    project = make_project()
    server = _start(lab_cp, project, hours=2)
    yield project, server
    _stop(lab_cp, project)


def test_status_bar_shows_time_left_and_run_configuration_and_extends(page, lab_cp, running) -> None:  # noqa: ANN001
    project, server = running
    open_notebook(page, server, "work.ipynb")
    item = page.locator(TIME_LEFT)
    page.wait_for_function("(sel) => / left · /.test(document.querySelector(sel)?.textContent || '')",
                           arg=TIME_LEFT, timeout=30_000)
    text = item.inner_text()
    assert 2 * 3600 - 300 <= _left_s(text) < 2 * 3600, text
    assert text.endswith("· local"), text  # the current kernel's run configuration
    shot(page, "lab-status-bar")
    before = lab_cp.request("GET", f"/api/projects/{project['id']}/server")["deadline"]

    item.click()
    page.get_by_role("button", name="Extend (+6 h)").click()
    toast_with(page, "extended")
    after = lab_cp.request("GET", f"/api/projects/{project['id']}/server")["deadline"]
    gained = (datetime.fromisoformat(after) - datetime.fromisoformat(before)).total_seconds()
    assert gained == pytest.approx(6 * 3600, abs=5)
    page.wait_for_function("(sel) => /^7 h/.test(document.querySelector(sel).textContent)", arg=TIME_LEFT)
    shot(page, "lab-extended")


def test_a_recorded_kernel_end_is_shown_with_its_reason(page, lab_cp, running) -> None:  # noqa: ANN001
    _, server = running
    open_notebook(page, server, "work.ipynb")
    with jupyter(server) as j:
        sessions = [s for s in j.get("/api/sessions").json() if s["path"] == "work.ipynb"]
    kernel_id = sessions[0]["kernel"]["id"]
    record_end(KernelEnd(kernel_id=kernel_id, run_config="local", oom=True, memory_limit=256 * 1024 * 1024),
               _ends_file(server, lab_cp))
    toast = toast_with(page, "out of memory (limit 256 MiB)")
    assert "work.ipynb" in toast.inner_text()
    shot(page, "lab-kernel-end")
    with jupyter(server) as j:  # the same end, in the extension's answer
        state = j.get("/labwork/lifecycle").json()
    assert state["kernels"][kernel_id]["end"]["reason"] == "out of memory (limit 256 MiB)"


def test_warning_near_the_deadline_then_unsaved_edit_is_saved_before_the_stop(page, lab_cp, make_project
                                                                              ) -> None:  # noqa: ANN001
    project = make_project()
    server = _start(lab_cp, project, hours=100 / 3600)  # stops in 100 s; warnings at 75 s and 30 s
    open_notebook(page, server, "work.ipynb")
    toast = toast_with(page, "labwork stops this server in", timeout=100_000)
    assert toast.get_by_role("button", name="Extend (+6 h)").count() == 1
    assert toast.get_by_role("button", name="Save all").count() == 1
    shot(page, "lab-deadline-warning")

    page.locator(EDITOR).first.click()
    page.keyboard.type("edited = 'kept by save before stop'")
    page.wait_for_selector(".jp-NotebookPanel .jp-mod-dirty, .jp-DocumentWidget.jp-mod-dirty, "
                           ".lm-TabBar-tab.jp-mod-dirty", timeout=10_000)
    path = Path(project["path"]) / "work.ipynb"
    assert "kept by save before stop" not in path.read_text()  # not saved yet (autosave is off)

    def stopped() -> dict[str, Any] | None:
        status = lab_cp.request("GET", f"/api/projects/{project['id']}/server")
        return status if status["state"] == "stopped" else None

    status = wait_for(stopped, timeout=180, interval=1.0, what="the server stopped at its deadline")
    assert status["stop_reason"].startswith("deadline reached"), status["stop_reason"]
    assert "kept by save before stop" in path.read_text()
    log = lab_cp.request("GET", f"/api/projects/{project['id']}/server/logs")["text"]
    assert "save before stop (1 tab(s)): saved work.ipynb" in log, log[-2000:]


def test_the_warning_offsets_come_from_the_settings(lab_cp, running) -> None:  # noqa: ANN001
    _, server = running
    with jupyter(server) as j:
        state = j.get("/labwork/lifecycle").json()
    assert state["warn_before_s"] == list(map(float, WARN_BEFORE_S))
    assert state["deadline"] is not None and state["time_left_s"] > 3600


def test_the_classic_ui_loads_with_the_extension(page, lab_cp, make_project) -> None:  # noqa: ANN001
    project = make_project()
    server = _start(lab_cp, project, hours=1, ui="notebook")
    try:
        polled: list[str] = []
        page.on("request", lambda r: polled.append(r.url) if "/labwork/lifecycle" in r.url else None)
        page.goto(f"{server['base_url']}/notebooks/work.ipynb?token={server['token']}")
        page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=120_000)
        page.wait_for_selector("body[data-labwork-lab='active']", timeout=60_000, state="attached")
        wait_for(lambda: polled or None, timeout=30, what="the extension's first lifecycle request")
        # a notice the control plane pushes reaches the classic UI too
        with jupyter(server) as j:
            r = j.put("/labwork/lifecycle", json={"notice": {"kind": "idle", "text": "idle for 50 min: stops in 10 min",
                                                           "stop_at": None}})
        assert r.status_code == 200, r.text
        toast_with(page, "idle for 50 min")
        shot(page, "notebook7-extension")
    finally:
        _stop(lab_cp, project)


def test_unauthenticated_requests_are_refused(running) -> None:  # noqa: ANN001
    _, server = running
    with httpx.Client(base_url=server["base_url"], timeout=10) as anon:
        assert anon.get("/labwork/lifecycle").status_code in (401, 403)
        assert anon.put("/labwork/lifecycle", json={"deadline": None}).status_code in (401, 403)
