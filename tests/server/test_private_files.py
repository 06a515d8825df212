"""LABWORK_HOME holds secrets (the control plane's token, live Jupyter tokens in the database,
logs): another local user reads none of it, whatever the umask, and no log line holds a token."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"),
                                reason="needs root and runuser to read files as user 'nobody'")


def _labwork(home: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI as a user with umask 022 runs it (so modes come from labwork, not the umask)."""
    env = dict(os.environ, LABWORK_HOME=str(home), LABWORK_PORT="0")
    return subprocess.run([sys.executable, "-m", "labwork", *args], env=env, capture_output=True, text=True,
                          timeout=300, preexec_fn=lambda: os.umask(0o022))


def _nobody_can_read(path: Path) -> bool:
    return subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(path)], capture_output=True).returncode == 0


@pytest.fixture
def open_base() -> Path:
    """A folder every user may enter, as a home directory under /home often is."""
    base = Path(tempfile.mkdtemp(prefix="labwork-modes-", dir="/tmp"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_nobody_reads_anything_under_labwork_home_and_no_log_holds_a_token(open_base: Path) -> None:
    from labwork.project import init_project
    home = open_base / "home"
    (home / "logs").mkdir(parents=True)  # an installation from before: world-readable files
    os.chmod(home, 0o755)
    os.chmod(home / "logs", 0o755)
    old = home / "logs" / "old.log"
    old.write_text("from an older labwork\n")
    os.chmod(old, 0o644)
    project = init_project(open_base / "proj", "modes").root

    started = _labwork(home, "notebook", "start", str(project), "--no-browser", "--json")
    try:
        assert started.returncode == 0, started.stderr
        st = json.loads(started.stdout)
        jupyter_token = st["token"]
        # the Jupyter server works for the user with the user's umask: its files are not 0600
        r = httpx.put(f"{st['base_url']}/api/contents/made-by-jupyter.txt", timeout=30,
                      headers={"Authorization": f"token {jupyter_token}"},
                      json={"type": "file", "format": "text", "content": "hi"})
        assert r.status_code in (200, 201), r.text
        assert stat.S_IMODE((project / "made-by-jupyter.txt").stat().st_mode) == 0o644
        token = (home / "token").read_text().strip()

        seen = []
        for dirpath, dirnames, filenames in os.walk(home):
            assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
            for name in filenames:
                path = Path(dirpath, name)
                if path.is_symlink():
                    continue
                assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))
                assert not _nobody_can_read(path), path
                seen.append(path.relative_to(home).as_posix())
        for must in ("token", "labwork.db", "control.json", "logs/control.log", "logs/old.log"):
            assert must in seen, seen
        assert any(p.startswith("labwork.db-") for p in seen), seen  # -wal / -shm

        logs = [p for p in home.rglob("*") if p.is_file() and (p.suffix == ".log" or "logs" in p.parts)]
        assert len(logs) >= 2  # control.log and the Jupyter server's log
        for path in logs:
            text = path.read_text(errors="replace")
            assert token not in text and jupyter_token not in text, path
        # captured (not a terminal): the CLI's own output, which may end up in a log, holds none either
        assert token not in started.stderr and "token in" in started.stderr
    finally:
        _labwork(home, "notebook", "stop", str(project))
        try:
            os.kill(json.loads((home / "control.json").read_text())["pid"], signal.SIGTERM)
        except (OSError, ValueError, KeyError):
            pass
