"""Fixtures shared by every part: temporary LABWORK_HOME, projects, a real control plane."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


class ControlPlane:
    """`python -m labwork serve --port 0` in a subprocess, as a user would run it."""

    def __init__(self, home: Path, db: str | None = None) -> None:
        self.home = home
        self.db = db
        self.proc: subprocess.Popen | None = None
        self.url = ""

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, LABWORK_HOME=str(self.home))

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def start(self, timeout: float = 60) -> "ControlPlane":
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "control.json").unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "labwork", "serve", "--port", "0"]
        if self.db:
            cmd += ["--db", self.db]
        log = open(self.home / "serve-test.log", "ab")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("control plane exited:\n" + (self.home / "serve-test.log").read_text()[-3000:])
            try:
                info = json.loads((self.home / "control.json").read_text())
                if info["pid"] == self.proc.pid:
                    r = httpx.get(info["url"] + "/api/status", headers=self.headers_for(), timeout=2)
                    if r.status_code == 200:
                        self.url = info["url"]
                        return self
            except (OSError, ValueError, KeyError, httpx.HTTPError):
                pass
            time.sleep(0.1)
        raise RuntimeError("control plane did not start:\n" + (self.home / "serve-test.log").read_text()[-3000:])

    def headers_for(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers_for(), timeout=120)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def cli(self, *args: str, check: bool = True, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run `labwork ARGS` against this control plane's home."""
        proc = subprocess.run([sys.executable, "-m", "labwork", *args], env=self.env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"labwork {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture
def labwork_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("LABWORK_HOME", str(home))
    return home


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    from labwork.project import init_project
    return init_project(tmp_path / "proj", "myProj").root


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One real control plane for the tests that only need one."""
    cp = ControlPlane(tmp_path_factory.mktemp("cp-home")).start()
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
