"""Fixtures for run-history tests: stores (SQLite and a throw-away PostgreSQL database), a real
control plane in a subprocess, and real ipykernel kernels with the labwork kernel environment."""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from history_support import PG_ADMIN, ControlPlane, Kernel  # noqa: E402
from labwork.store.db import Store  # noqa: E402


@pytest.fixture(scope="session")
def pg_database():
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    try:
        import psycopg
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL not reachable ({exc})")
    name = f"labwork_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    params = dict(p.split("=", 1) for p in PG_ADMIN.split())
    url = f"postgresql+psycopg://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:" \
          f"{params.get('port', '5432')}/{name}"
    try:
        yield url
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_url(pg_database):
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
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


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
