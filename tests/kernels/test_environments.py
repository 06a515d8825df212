"""`labwork experiment prepare` builds a real venv from PyPI; `labwork env check` reads pip check."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labwork.kernels.envcheck import check_environment
from labwork.kernels.environments import environment_for, prepare_environment
from labwork.kernels.specmanager import LabworkKernelSpecManager
from labwork.project import attach_target, init_project, load_project
from labwork.settings import load_settings
from tests.kernels.test_kernels import run


@pytest.mark.slow
def test_prepare_builds_reuses_and_runs_a_kernel(tmp_path: Path, labwork_home: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = init_project(tmp_path / "ep", "envProj").root
    monkeypatch.setenv("LABWORK_PROJECT_DIR", str(root))
    (root / "requirements.txt").write_text("six\nrequests\n")
    attach_target(root, "local", "venv", {})
    rc = root / ".labwork" / "runconfig" / "venv.toml"
    rc.write_text(rc.read_text() + '\n[environment]\nrequirements = "requirements.txt"\n')

    # through the CLI, with progress
    proc = subprocess.run([sys.executable, "-m", "labwork", "experiment", "prepare", "--runconfig", "venv",
                           "--project", str(root)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[1/3]" in proc.stdout and "ready:" in proc.stdout
    env = environment_for(load_project(root), "venv", load_settings())
    assert env.prepared and Path(env.python).exists()

    lines: list[str] = []
    prepare_environment(load_project(root), "venv", load_settings(), lines.append)
    assert any("reusing" in line for line in lines)

    out = run(LabworkKernelSpecManager(), "labwork-venv",
              "import sys, six; print(sys.executable)\n%labwork --help")
    assert out["status"] == "ok", out
    assert out["stdout"].splitlines()[0] == env.python

    report = check_environment(load_project(root), "venv", load_settings())
    assert report["ok"], report

    # one conflict outside Jupyter (requests without urllib3), one that breaks the kernel itself
    subprocess.run([env.python, "-m", "pip", "uninstall", "-y", "-q", "urllib3", "tornado"], check=True)
    report = check_environment(load_project(root), "venv", load_settings())
    assert not report["ok"] and report["jupyter_breaking"] >= 1
    first, last = report["conflicts"][0], report["conflicts"][-1]
    assert first["breaks_jupyter"] and first["requirement"] == "tornado"
    assert not last["breaks_jupyter"] and (last["package"].lower(), last["requirement"]) == ("requests", "urllib3")
    cli = subprocess.run([sys.executable, "-m", "labwork", "env", "check", "--runconfig", "venv",
                          "--project", str(root), "--json"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 1
    assert json.loads(cli.stdout)["conflicts"][0]["requirement"] == "tornado"

    # changing the requirements means a new environment
    (root / "requirements.txt").write_text("six\n")
    assert not environment_for(load_project(root), "venv", load_settings()).prepared
