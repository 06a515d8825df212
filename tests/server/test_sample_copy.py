"""`make run`'s sample project runs on a copy under LABWORK_HOME: using it (Jupyter saving the
notebook, cells writing outputs/) leaves the repository clean."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import REPO

SAMPLE = REPO / "examples" / "iris"


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _start(home: Path, log: Path) -> tuple[subprocess.Popen, dict, dict[str, str]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "labwork", "serve", "--port", "0", "--sample", str(SAMPLE)],
                                env=dict(os.environ, LABWORK_HOME=str(home)), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            info = json.loads((home / "control.json").read_text())
            headers = {"Authorization": f"Bearer {(home / 'token').read_text().strip()}"}
            if info["pid"] == proc.pid and httpx.get(info["url"] + "/api/status", headers=headers,
                                                     timeout=2).status_code == 200:
                return proc, info, headers
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise AssertionError(log.read_text()[-3000:])


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(60)


def test_the_sample_runs_on_a_copy_and_the_repository_stays_clean(tmp_path: Path) -> None:
    home, log = tmp_path / "home", tmp_path / "serve.log"
    before = _digest(SAMPLE)
    proc, info, headers = _start(home, log)
    try:
        with httpx.Client(base_url=info["url"], headers=headers, timeout=120) as c:
            projects = c.get("/api/projects").json()
            assert [(p["name"], p["path"]) for p in projects] == [("myIris", str(home / "samples" / "iris"))]
            pid = projects[0]["id"]
            st = c.post(f"/api/projects/{pid}/server", json={"kind": "python", "ui": "lab"})
            assert st.status_code in (200, 201), st.text
            st = st.json()
            try:
                jupyter = httpx.Client(base_url=st["base_url"], timeout=60,
                                       headers={"Authorization": f"token {st['token']}"})
                nb = jupyter.get("/api/contents/iris.ipynb").json()["content"]
                nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "my notes"})
                saved = jupyter.put("/api/contents/iris.ipynb", json={"type": "notebook", "content": nb})
                assert saved.status_code == 200, saved.text
                out = jupyter.put("/api/contents/outputs/model.pkl",
                                  json={"type": "file", "format": "text", "content": "a model"})
                assert out.status_code in (200, 201), out.text
                jupyter.close()
            finally:
                c.delete(f"/api/projects/{pid}/server")
    finally:
        _stop(proc)
    copy = home / "samples" / "iris"
    assert "my notes" in (copy / "iris.ipynb").read_text() and (copy / "outputs" / "model.pkl").exists()
    assert _digest(SAMPLE) == before
    git = subprocess.run(["git", "status", "--porcelain", "--ignored", "--", str(SAMPLE)], cwd=REPO,
                         capture_output=True, text=True)
    assert git.returncode != 0 or git.stdout == "", git.stdout

    proc, _info, _headers = _start(home, log)  # a later start keeps the user's work in the copy
    _stop(proc)
    assert "my notes" in (copy / "iris.ipynb").read_text()
