"""The store on SQLite and PostgreSQL: migrations, transactions, projects."""
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from labwork.errors import NotFound, Unavailable
from labwork.project import init_project
from labwork.project.registry import get_project_row, list_projects, register_project
from labwork.store import Store


def test_migrations_create_schema_and_are_idempotent(db_url: str) -> None:
    store = Store(db_url)
    Store(db_url).dispose()  # a second start migrates nothing and fails nothing
    tables = set(inspect(store.engine).get_table_names())
    assert {"projects", "servers", "kernel_launches", "alembic_version"} <= tables
    with store.engine.connect() as conn:
        heads = conn.execute(text("select version_num from alembic_version")).scalars().all()
    assert len(heads) == 1
    store.dispose()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
    store.dispose()


def test_register_and_find_projects(db_url: str, tmp_path: Path) -> None:
    store = Store(db_url)
    root = init_project(tmp_path / "p1", "alpha").root
    row = register_project(store, root)
    again = register_project(store, root / "outputs")  # a subfolder finds the same project
    assert row["id"] == again["id"] and row["name"] == "alpha"
    assert [p["path"] for p in list_projects(store) if p["path"] == str(root)] == [str(root)]
    assert get_project_row(store, row["id"])["path"] == str(root)
    assert get_project_row(store, str(root))["id"] == row["id"]
    with pytest.raises(NotFound):
        get_project_row(store, 999999)
    with pytest.raises(NotFound, match="not a labwork project"):
        register_project(store, tmp_path)
    store.dispose()


def test_transaction_rolls_back_on_error(db_url: str, tmp_path: Path) -> None:
    from labwork.store.tables import ProjectRow
    from datetime import UTC, datetime

    store = Store(db_url)
    path = str(tmp_path / "rollback")
    with pytest.raises(RuntimeError):
        with store.session() as s:
            s.add(ProjectRow(name="x", path=path, registered_at=datetime.now(UTC)))
            s.flush()
            raise RuntimeError("boom")
    assert path not in [p["path"] for p in list_projects(store)]
    store.dispose()


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(Unavailable) as err:
        Store("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    assert "cannot open the store" in err.value.message
    assert "secret" not in str(err.value)
