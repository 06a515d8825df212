"""Dashboard tests: a real control plane (tests/conftest.py `ControlPlane`), real projects, and
Debian's chromium driven by Playwright. Screenshots go to test-artifacts/dashboard/."""
from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ARTIFACTS, ControlPlane

SHOTS = ARTIFACTS / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One control plane for the dashboard tests (servers it starts are stopped at the end)."""
    home = tmp_path_factory.mktemp("dash-home")
    (home / "config.toml").write_text('deadline_check_s = 1.0\n[gateway]\nmaster = "local[2]"\n'
                                      'driver_memory = "512m"\n')
    plane = ControlPlane(home).start()
    yield plane
    try:
        with plane.client() as http:
            for server in http.get("/api/servers").json():
                pid = (server.get("project") or {}).get("id")
                if pid is not None:
                    http.delete(f"/api/projects/{pid}/server", timeout=60)
    except Exception:
        pass
    plane.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


def make_project(cp: ControlPlane, root: Path, name: str) -> dict:
    from labwork.project import init_project
    init_project(root, name)
    with cp.client() as http:
        r = http.post("/api/projects", json={"path": str(root)})
        r.raise_for_status()
        return r.json()


@pytest.fixture
def project(cp: ControlPlane, tmp_path: Path) -> dict:
    """A fresh project registered on the control plane: {id, name, path}."""
    return make_project(cp, tmp_path / "proj", f"dash-{secrets.token_hex(3)}")


def login(page, cp: ControlPlane, path: str = "/") -> None:
    """Open `path` with ?token= as the URL `labwork serve` prints (sets the session cookie)."""
    sep = "&" if "?" in path else "?"
    page.goto(f"{cp.url}{path}{sep}token={cp.token}")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def seconds(text: str) -> int:
    """'5 h 59 min 58 s' -> seconds."""
    m = re.search(r"(\d+) h (\d+) min (\d+) s", text)
    assert m, f"not a time left: {text!r}"
    h, mi, s = (int(x) for x in m.groups())
    return h * 3600 + mi * 60 + s


def api(cp: ControlPlane) -> httpx.Client:
    return cp.client()
