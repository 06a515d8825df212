"""Fixtures shared by every part: temporary LABWORK_HOME, projects, a real control plane, stores.

Helpers (the control-plane factory, the gateway in a thread, free_port, wait_for) are in
tests/support; a folder's conftest only adds its one-line variants. Names mean one thing suite-wide:
`labwork_home` a fresh LABWORK_HOME, `project_dir`/`iris_dir` a fresh project folder,
`control_plane` the session's shared plane, `own_cp` a plane of the test's own.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ARTIFACTS, ControlPlane

@pytest.fixture
def labwork_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh LABWORK_HOME folder, also set in this process's environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("LABWORK_HOME", str(home))
    return home


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A fresh project folder named myProj (not registered anywhere)."""
    from labwork.project import init_project
    return init_project(tmp_path / "proj", "myProj").root


@pytest.fixture
def iris_dir(tmp_path: Path) -> Path:
    """A fresh project folder named myIris, the name the kernel environments of tests/support use."""
    from labwork.project import init_project
    return init_project(tmp_path / "irisproj", "myIris").root


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One real control plane for the tests that only need one."""
    cp = ControlPlane(tmp_path_factory.mktemp("cp-home")).start()
    yield cp
    cp.stop()


@pytest.fixture
def own_cp(labwork_home: Path) -> Iterator[ControlPlane]:
    """A control plane of this test's own, on `labwork_home` (it may stop and restart it)."""
    cp = ControlPlane(labwork_home).start()
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# PostgreSQL: 127.0.0.1:5432, trust auth, database `test` (as on every machine of this project).
PG_ADMIN = os.environ.get("LABWORK_TEST_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end. Without a server the
    PostgreSQL tests are skipped with a reason naming what is missing (`pytest -ra` lists it);
    LABWORK_TEST_PG_REQUIRED=1 makes that a failure instead (CI has PostgreSQL)."""
    def missing(what: str) -> None:
        msg = (f"PostgreSQL tests need {what}; start one with 'pg_ctlcluster --skip-systemctl-redirect "
               "$(ls /etc/postgresql) main start' or point LABWORK_TEST_PG at one")
        if os.environ.get("LABWORK_TEST_PG_REQUIRED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)

    try:
        import psycopg
    except ImportError:
        missing("the psycopg package (labwork[postgres])")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        missing(f"a PostgreSQL server at {PG_ADMIN!r} (trust auth) — connecting failed: "
                f"{str(exc).strip().splitlines()[0]}")
    name = f"labwork_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    params = dict(p.split("=", 1) for p in PG_ADMIN.split())
    try:
        yield (f"postgresql+psycopg://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
               f"{params.get('port', '5432')}/{name}")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A fresh schema in the session's database (search_path), dropped after the test."""
    import psycopg
    schema = f"t_{uuid.uuid4().hex[:10]}"
    dsn = pg_database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{pg_database}?options=-csearch_path%3D{schema}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


# --- a real browser: one Chromium for the whole session (Playwright's sync API allows one at a time) ---

@pytest.fixture(scope="session")
def browser():  # noqa: ANN201 - a Playwright Browser
    """Debian's chromium through Playwright, shared by every folder's page tests."""
    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser):  # noqa: ANN001, ANN201 - a Playwright BrowserContext
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):  # noqa: ANN001, ANN201 - a Playwright Page
    return context.new_page()

