"""Fixtures for run-history tests: stores (SQLite and a throw-away PostgreSQL database), a real
control plane in a subprocess, and real ipykernel kernels with the labwork kernel environment."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from history_support import ControlPlane, Kernel  # noqa: E402
from labwork.store.db import Store  # noqa: E402


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.dispose()


@pytest.fixture
def home(tmp_path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def control_plane(home):
    cp = ControlPlane(home).start()
    yield cp
    cp.stop()


@pytest.fixture
def project(tmp_path) -> Path:
    from labwork.project.files import init_project
    root = tmp_path / "irisproj"
    init_project(root, name="myIris")
    return root


@pytest.fixture
def kernels(tmp_path):
    started: list[Kernel] = []

    def start(env: dict[str, str], cwd: Path, preload: bool = True) -> Kernel:
        k = Kernel(env, cwd, tmp_path / "runtime", preload=preload)
        started.append(k)
        return k

    yield start
    for k in started:
        try:
            if k.km.is_alive():
                k.shutdown()
        except Exception:
            pass
