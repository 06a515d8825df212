"""What a server's environment says about its kernels' ends and the status bar's memory limit."""
from __future__ import annotations

from pathlib import Path

import pytest

from labwork.notebooks.config import ServerConfig
from labwork.notebooks.launch import server_environment
from labwork.notebooks.rows import kernel_ends_file


def env_of(home: Path, monkeypatch: pytest.MonkeyPatch, **kw: object) -> dict[str, str]:
    monkeypatch.setenv("LABWORK_KERNEL_ENDS", "/elsewhere/another-server.jsonl")
    return server_environment(home=home, url="http://127.0.0.1:1", root=home, name="p", server_id=3,
                              config=ServerConfig(), token="t", **kw)


def test_every_server_gets_its_own_0600_ends_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "logs" / "3.log"
    log.parent.mkdir()
    path = kernel_ends_file(log)
    assert path == tmp_path / "logs" / "3.kernel-ends.jsonl"
    env = env_of(tmp_path, monkeypatch, kernel_ends=path)
    assert env["LABWORK_KERNEL_ENDS"] == str(path)
    assert path.is_file() and (path.stat().st_mode & 0o777) == 0o600
    # a process without a server (a job's runner) never writes into another server's file
    assert "LABWORK_KERNEL_ENDS" not in env_of(tmp_path, monkeypatch)


def test_jupyter_config_path_sets_the_status_bar_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", "/users/own")
    env = env_of(tmp_path, monkeypatch)
    ours, theirs = env["JUPYTER_CONFIG_PATH"].split(":")
    assert theirs == "/users/own"
    config = Path(ours) / "jupyter_server_config.py"
    assert "c.ResourceUseDisplay.mem_limit = _labwork_mem_limit" in config.read_text()
    assert (config.stat().st_mode & 0o777) == 0o600 and (Path(ours).stat().st_mode & 0o777) == 0o700
