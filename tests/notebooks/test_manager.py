"""The manager in-process: the Spark gateway hook on stop, exit codes, a start that fails."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from labwork.errors import Unavailable
from labwork.notebooks.manager import ServerManager
from labwork.project import init_project
from labwork.server.context import Context
from labwork.settings import load_settings
from labwork.store.db import Store
from tests.notebooks.conftest import kill_servers, wait_for


class RecordingGateway:
    """Stands in for the Spark gateway part: records the hook calls, optionally failing."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def delete_project_sessions(self, project_path: str) -> int:
        self.calls.append(project_path)
        if self.fail:
            raise RuntimeError("gateway is down")
        return 0


@pytest.fixture
def manager(tmp_path: Path):
    home = tmp_path / "home"
    settings = load_settings(flags={"home": home, "jupyter_start_timeout_s": 60}, environ={})
    ctx = Context(settings=settings, store=Store(settings.db_url), token="t", url="http://127.0.0.1:1")
    yield ServerManager(ctx)
    kill_servers(home)
    ctx.store.dispose()


def test_stop_asks_the_gateway_to_delete_the_projects_sessions(manager: ServerManager, tmp_path: Path) -> None:
    root = init_project(tmp_path / "g", "g").root
    gateway = RecordingGateway()
    manager.ctx.parts["gateway"] = gateway
    manager.start(str(root), {"hours": 1})
    manager.stop(str(root))
    assert gateway.calls == [str(root)]

    gateway.fail = True  # a failing gateway never blocks the stop; the problem goes to the log
    manager.start(str(root), {"hours": 1})
    status = manager.stop(str(root))
    assert status["state"] == "stopped"
    assert "could not delete the project's Spark sessions" in Path(status["log_path"]).read_text()


def test_a_killed_server_records_its_exit_code(manager: ServerManager, tmp_path: Path) -> None:
    root = init_project(tmp_path / "k", "k").root
    server = manager.start(str(root), {"hours": 1})
    os.kill(server["pid"], signal.SIGKILL)

    def checked() -> dict | None:
        manager.check()
        status = manager.status(str(root))
        return status if status["state"] == "stopped" else None

    status = wait_for(checked, timeout=30)
    assert "exited unexpectedly (exit code -9)" in status["stop_reason"]


def test_a_server_that_cannot_start_fails_with_its_log(manager: ServerManager, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = init_project(tmp_path / "f", "f").root
    # a Jupyter that refuses an unknown option: what a broken Jupyter installation looks like
    monkeypatch.setattr(manager, "_command", lambda ui, port, r: [
        sys.executable, "-c", "import sys; print('jupyter: broken installation', flush=True); sys.exit(3)"])
    with pytest.raises(Unavailable) as info:
        manager.start(str(root), {"hours": 1})
    assert "exited with code 3" in str(info.value) and "broken installation" in str(info.value)
    status = manager.status(str(root))
    assert status["state"] == "failed" and "did not start" in status["stop_reason"]
