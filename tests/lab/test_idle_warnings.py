"""The idle stop's warnings (issue 13, "the same warnings and save-before-stop as the deadline"), on
a real control plane and real Jupyter servers: the extension's `GET labwork/lifecycle` holds the
idle notice with its stop_at before the stop, running a cell withdraws it, and the stop says
"idle for 30 s" and saves first (the server log); in Chromium, JupyterLab shows the warning.

The plane warns 20 and 8 s before a stop and the servers stop when idle for 30 s ("15 minutes"
is seconds here)."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.lab.conftest import lab_settings
from tests.support import ControlPlane, wait_for
from tests.support.browser import shot
from tests.support.jupyter import NOTEBOOK_ENV, jupyter, run_and_leave, stop_everything
from tests.support.jupyterlab import EDITOR, open_notebook, toast_with

IDLE = "30s"
CONFIG = "warn_before_s = [20, 8]\nsave_before_stop_s = 5\n"
UNTRACKED = {"no_track_activity": "1"}  # the test's own looks never count as activity


@pytest.fixture(scope="module")
def warn_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    home = tmp_path_factory.mktemp("idle-warn-home")
    env = {**NOTEBOOK_ENV, "JUPYTERLAB_SETTINGS_DIR": str(lab_settings(home / "lab-settings"))}
    cp = ControlPlane(home, env=env, config=CONFIG).start()
    yield cp
    stop_everything(cp)


def _start(cp: ControlPlane, project: dict[str, Any]) -> dict[str, Any]:
    with cp.client() as api:
        r = api.post(f"/api/projects/{project['id']}/server", json={"hours": 1, "idle": IDLE})
        assert r.status_code == 201, r.text
        return r.json()


def _status(cp: ControlPlane, project: dict[str, Any]) -> dict[str, Any]:
    return cp.request("GET", f"/api/projects/{project['id']}/server")


def _lifecycle(server: dict[str, Any]) -> dict[str, Any]:
    with jupyter(server) as jup:
        r = jup.get("/labwork/lifecycle", params=UNTRACKED)
        r.raise_for_status()
        return r.json()


def _notice_with(server: dict[str, Any], text: str) -> dict[str, Any] | None:
    state = _lifecycle(server)
    notice = state["notice"]
    return state if notice and notice["kind"] == "idle" and text in notice["text"] else None


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.mark.slow
def test_idle_warning_before_the_stop_withdrawn_by_a_cell_and_the_stop_saves_first(
        warn_cp: ControlPlane, tmp_path: Path) -> None:
    project = warn_cp.make_project(tmp_path / "warned", "warned")
    server = _start(warn_cp, project)
    with jupyter(server) as jup:
        kernel = jup.post("/api/kernels", json={"name": "python3"}).json()["id"]

    # 20 s before the idle stop the extension holds the idle notice, with its stop_at
    state = wait_for(lambda: _notice_with(server, "stops in 20 s"), timeout=90, what="the 20 s idle warning")
    notice = state["notice"]
    assert "idle timeout 30 s" in notice["text"] and "run a cell" in notice["text"]
    assert state["idle"]["timeout_s"] == 30.0
    assert _when(notice["stop_at"]) == _when(state["idle"]["stop_at"])
    assert _status(warn_cp, project)["state"] == "running"  # the warning comes before the stop
    warned_stop_at = _when(notice["stop_at"])

    # running a cell is activity: the notice is withdrawn and the stop moves later
    run_and_leave(server, kernel, "x = 1")
    state = wait_for(lambda: (s := _lifecycle(server))["notice"] is None and s, timeout=60,
                     what="the idle notice to be withdrawn")
    assert _when(state["idle"]["stop_at"]) > warned_stop_at
    assert _status(warn_cp, project)["state"] == "running"

    # left alone again, it is warned again (20 s, then 8 s before) ...
    state = wait_for(lambda: _notice_with(server, "stops in 8 s"), timeout=90, what="the 8 s idle warning")
    last_stop_at = _when(state["notice"]["stop_at"])
    assert last_stop_at > warned_stop_at

    # ... and stopped through the manager's stop path: the reason, and the save before the stop
    stopped = wait_for(lambda: (s := _status(warn_cp, project))["state"] == "stopped" and s,
                       timeout=90, what="the idle server to stop")
    assert stopped["stop_reason"] == "idle for 30 s"
    assert _when(stopped["stopped"]) >= last_stop_at
    log = Path(server["log_path"]).read_text()
    stopping = log.index("stopping the server: idle for 30 s")
    assert log.index("idle since") < stopping < log.index("save before stop: no JupyterLab tab was open")


# A tab the user left in the background: the browser says the document is hidden, and
# JupyterLab's own polls (kernels, sessions, contents) stand by, as they do in a real browser.
HIDE_TAB = """() => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


@pytest.mark.slow
def test_jupyterlab_shows_the_idle_warning(warn_cp: ControlPlane, tmp_path: Path, page) -> None:  # noqa: ANN001
    project = warn_cp.make_project(tmp_path / "shown", "shown")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")])
    nb.metadata["kernelspec"] = {"name": "labwork-local", "display_name": "shown local", "language": "python"}
    nbformat.write(nb, Path(project["path"]) / "work.ipynb")
    server = _start(warn_cp, project)
    open_notebook(page, server, "work.ipynb")
    page.locator(EDITOR).first.click()
    page.keyboard.type("edited = 'kept by the idle stop'")  # unsaved (JupyterLab's autosave is off)
    page.wait_for_selector(".lm-TabBar-tab.jp-mod-dirty", timeout=10_000)
    page.evaluate(HIDE_TAB)  # the tab stays open, its extension keeps polling labwork/lifecycle

    state = wait_for(lambda: _notice_with(server, "stops in 20 s"), timeout=120, what="the idle warning")
    assert state["clients"] == 1  # the tab is still there
    toast = toast_with(page, "has been idle and stops in 20 s")
    assert "idle timeout 30 s" in toast.inner_text()
    shot(page, "lab-idle-warning")
    # idle for 22 s: longer than the tab's 10 s polls of labwork/lifecycle, which are no activity
    toast_with(page, "has been idle and stops in 8 s")

    # the stop: the tab saves the unsaved edit first, says so, and the log records it
    toast_with(page, "labwork is stopping this server: idle for 30 s. saved work.ipynb")
    stopped = wait_for(lambda: (s := _status(warn_cp, project))["state"] == "stopped" and s,
                       timeout=90, what="the idle server to stop")
    assert stopped["stop_reason"] == "idle for 30 s"
    assert "save before stop (1 tab(s)): saved work.ipynb" in Path(server["log_path"]).read_text()
    assert "edited = 'kept by the idle stop'" in (Path(project["path"]) / "work.ipynb").read_text()
