"""Dashboard tests: a real control plane (the folder's variant: deadline checks every second, a
small local Spark), real projects, and Debian's chromium driven by Playwright
(tests/support/browser.py; the `browser`, `context` and `page` fixtures are tests/conftest.py's). Screenshots go to test-artifacts/dashboard/."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ControlPlane
from tests.support.jupyter import stop_everything

DASHBOARD_CONFIG = ('deadline_check_s = 1.0\n[gateway]\nmaster = "local[2]"\n'
                    'driver_memory = "512m"\n')


@pytest.fixture(scope="session")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One control plane for the dashboard tests (servers it starts are stopped at the end)."""
    plane = ControlPlane(tmp_path_factory.mktemp("dash-home"), config=DASHBOARD_CONFIG).start()
    yield plane
    stop_everything(plane)


@pytest.fixture
def project(cp: ControlPlane, tmp_path: Path) -> dict:
    """A fresh project registered on the control plane: {id, name, path}."""
    return cp.make_project(tmp_path / "proj", f"dash-{secrets.token_hex(3)}")
