"""The control plane's life as a user meets it: restart right after `kill -9` on the same port,
SIGTERM cleaning up, a stale control.json, a CLI with another LABWORK_HOME, a CLI racing a
control plane that is still starting. Real processes throughout."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from labwork.processes import free_port


def _env(home: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LABWORK_HOME"}
    if home is not None:
        env["LABWORK_HOME"] = str(home)
    return {**env, **extra}


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "labwork", "serve", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_up(home: Path, proc: subprocess.Popen, log: Path, timeout: float = 90) -> dict:
    token_file = home / "token"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            info = json.loads((home / "control.json").read_text())
            if info["pid"] == proc.pid:
                r = httpx.get(info["url"] + "/api/status", timeout=2,
                              headers={"Authorization": f"Bearer {token_file.read_text().strip()}"})
                if r.status_code == 200:
                    return info
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise AssertionError("control plane did not start:\n" + log.read_text()[-3000:])


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _kill_from_control_json(home: Path) -> None:
    try:
        os.kill(json.loads((home / "control.json").read_text())["pid"], signal.SIGTERM)
    except (OSError, ValueError, KeyError):
        pass


def test_restart_at_once_after_kill_9_on_the_same_port_and_sigterm_cleans_up(tmp_path: Path) -> None:
    home, log = tmp_path / "home", tmp_path / "serve.log"
    port = free_port()
    first = _serve(_env(home), port, log)
    try:
        info = _wait_up(home, first, log)
        with httpx.Client(base_url=info["url"]) as keep_alive:  # a connection the kill leaves behind
            keep_alive.get("/api/status")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        # the precondition the old check failed on: only TIME-WAIT holds the port now
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
        assert json.loads((home / "control.json").read_text())["pid"] == first.pid  # stale
    finally:
        _stop(first)
    second = _serve(_env(home), port, log)
    try:
        info = _wait_up(home, second, log)  # the stale control.json is replaced
        assert info["port"] == port and info["pid"] == second.pid and info["state"] in ("starting", "running")
        assert "is taken" not in log.read_text()
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
        assert not (home / "control.json").exists()
    finally:
        _stop(second)


def test_cli_ignores_a_stale_control_json(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (home / "control.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": dead.pid, "port": 9}))
    proc = subprocess.run([sys.executable, "-m", "labwork", "init", str(tmp_path / "p")], env=_env(home, LABWORK_PORT="0"),
                          capture_output=True, text=True, timeout=120)
    try:
        assert proc.returncode == 0, proc.stderr
        info = json.loads((home / "control.json").read_text())
        assert info["pid"] != dead.pid and "starting one in the background" in proc.stderr
    finally:
        _kill_from_control_json(home)


def test_cli_with_another_home_says_which_control_plane_holds_the_port(tmp_path: Path) -> None:
    user_home = tmp_path / "user"
    user_home.mkdir()
    default, other = user_home / ".labwork", tmp_path / "other-home"
    port = free_port()
    log = tmp_path / "serve.log"
    first = _serve(_env(None, HOME=str(user_home)), port, log)  # the default ~/.labwork
    try:
        _wait_up(default, first, log)
        proc = subprocess.run([sys.executable, "-m", "labwork", "init", str(tmp_path / "p")],
                              env=_env(other, HOME=str(user_home), LABWORK_PORT=str(port)),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert f"the control plane for {default} holds http://127.0.0.1:{port}" in proc.stderr, proc.stderr
        assert f"set LABWORK_HOME={default}" in proc.stderr
        started = json.loads((other / "control.json").read_text())
        assert started["port"] != port and f"control plane for {other} started at {started['url']}" in proc.stderr
    finally:
        _kill_from_control_json(other)
        _stop(first)


def test_cli_waits_for_a_control_plane_that_is_still_starting(tmp_path: Path) -> None:
    home, log = tmp_path / "home", tmp_path / "serve.log"
    serving = _serve(_env(home), 0, log)
    try:
        deadline = time.monotonic() + 60
        while not (home / "control.json").exists():  # `labwork serve &` and at once ...
            assert time.monotonic() < deadline and serving.poll() is None, log.read_text()
            time.sleep(0.02)
        # it claims its home before the slow part of its start (store, parts), so a CLI finds it
        assert json.loads((home / "control.json").read_text()).get("state") == "starting"
        proc = subprocess.run([sys.executable, "-m", "labwork", "init", str(tmp_path / "p"), "--name", "early"],
                              env=_env(home), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "already" not in proc.stderr and "starting one in the background" not in proc.stderr
        info = _wait_up(home, serving, log)
        assert info["pid"] == serving.pid
        r = httpx.get(info["url"] + "/api/projects", timeout=10,
                      headers={"Authorization": f"Bearer {(home / 'token').read_text().strip()}"})
        assert [p["name"] for p in r.json()] == ["early"]
    finally:
        _stop(serving)


def test_background_start_prints_the_token_to_the_terminal_not_to_the_log(tmp_path: Path) -> None:
    import pty
    home = tmp_path / "home"
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "labwork", "init", str(tmp_path / "p")],
                              env=_env(home, LABWORK_PORT="0"), stdout=subprocess.PIPE, stderr=slave,
                              text=True, timeout=120)
        os.close(slave)
        terminal = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: nothing more to read
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(master)
        _kill_from_control_json(home)
    assert proc.returncode == 0, terminal.decode(errors="replace")
    token = (home / "token").read_text().strip()
    assert f"/?token={token}" in terminal.decode(errors="replace")
    log = (home / "logs" / "control.log").read_text()
    assert "dashboard: http://127.0.0.1:" in log and token not in log


def test_cli_says_when_another_program_holds_the_port(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "labwork", "init", str(tmp_path / "p")],
                              env=_env(home, LABWORK_PORT=str(port)), capture_output=True, text=True, timeout=120)
        try:
            assert proc.returncode == 0, proc.stderr
            assert f"http://127.0.0.1:{port} is taken by another program" in proc.stderr, proc.stderr
            assert json.loads((home / "control.json").read_text())["port"] != port
        finally:
            _kill_from_control_json(home)
