"""The upgrade to users (revision 0006_users) from a store made by the previous schema, with real
rows, on SQLite and PostgreSQL: every project, server record, run and job is kept, the admin owns
every project, and LABWORK_HOME/token logs in as that admin."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from labwork.store.db import MIGRATIONS, Store, make_engine
from tests.support import ControlPlane

PREVIOUS = "0005_jobs"


def _upgrade(engine: sa.Engine, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)


def _old_store(url: str, folders: list[Path]) -> dict[str, int]:
    """A store at the revision before users, with two projects, servers, runs and a job."""
    engine = make_engine(url)
    _upgrade(engine, PREVIOUS)
    now = datetime.now(UTC)
    with engine.begin() as c:
        for i, folder in enumerate(folders, 1):
            c.execute(sa.text("INSERT INTO projects (id, name, path, registered_at) VALUES (:i, :n, :p, :t)"),
                      {"i": i, "n": f"proj{i}", "p": str(folder), "t": now})
            c.execute(sa.text("INSERT INTO servers (project_id, state, ui, config, log_path, started_at, "
                              "stop_reason) VALUES (:p, 'stopped', 'lab', :c, :l, :t, 'deadline')"),
                      {"p": i, "c": json.dumps({"kind": "python"}), "l": f"/tmp/log{i}", "t": now})
            c.execute(sa.text("INSERT INTO history_runs (id, source, project, project_dir, status, history, "
                              "started_at, entry_count, error_count, info) VALUES (:id, 'kernel', :n, :p, "
                              "'completed', :h, :t, 3, 0, '{}')"),
                      {"id": f"run{i}", "n": f"proj{i}", "p": str(folder), "h": True, "t": now})
        c.execute(sa.text("INSERT INTO web_sessions (id_hash, created_at, expires_at) VALUES ('x', :t, :t)"),
                  {"t": now})
        c.execute(sa.text("INSERT INTO jobs (project_id, name, notebook, runconfig, config, parameters, timezone, "
                          "enabled, missed, retries, retry_delay_s, max_concurrent, notify_success, created_at, "
                          "updated_at) VALUES (1, 'nightly', 'a.ipynb', 'local', '{}', '{}', 'UTC', :e, 'skip', "
                          "0, 30, 1, :f, :t, :t)"), {"e": True, "f": False, "t": now})
    engine.dispose()
    return {"projects": len(folders), "servers": len(folders), "history_runs": len(folders), "jobs": 1}


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("projects", "servers", "history_runs", "jobs")}


def test_upgrade_keeps_every_row_and_makes_the_admin_owner(db_url: str, tmp_path: Path) -> None:
    folders = [tmp_path / "a", tmp_path / "b"]
    before = _old_store(db_url, folders)
    store = Store(db_url)  # migrates to head, as every start does
    try:
        assert _counts(store.engine) == before
        with store.engine.connect() as c:
            users = c.execute(sa.text("SELECT id, name, admin, password_hash FROM users")).all()
            members = c.execute(sa.text("SELECT project_id, user_id, role FROM project_members "
                                        "ORDER BY project_id")).all()
            sessions = c.execute(sa.text("SELECT count(*) FROM web_sessions")).scalar_one()
            stop_reasons = c.execute(sa.text("SELECT stop_reason FROM servers")).scalars().all()
            server_users = c.execute(sa.text("SELECT user_id FROM servers")).scalars().all()
            run_users = c.execute(sa.text('SELECT "user" FROM history_runs')).scalars().all()
        assert [(u.name, bool(u.admin), u.password_hash) for u in users] == [("admin", True, None)]
        assert [(m.project_id, m.user_id, m.role) for m in members] == [(1, users[0].id, "owner"),
                                                                        (2, users[0].id, "owner")]
        assert sessions == 0  # log-ins from before users end: log in again
        assert stop_reasons == ["deadline", "deadline"]
        # 0007: the servers and runs from before users are the admin's (the single token's holder)
        assert server_users == [users[0].id, users[0].id] and run_users == ["admin", "admin"]
        # the id sequence follows the migrated admin: the next user gets a fresh id
        from labwork.auth.users import add_user
        assert add_user(store, "alice", password="long enough")["id"] == users[0].id + 1
    finally:
        store.dispose()


def test_empty_store_gets_no_users_from_the_migration(db_url: str) -> None:
    store = Store(db_url)
    try:
        with store.engine.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 0
    finally:
        store.dispose()


def test_single_token_installation_keeps_working(tmp_path: Path) -> None:
    """An old SQLite store and its token file: after the upgrade the token is the admin, who sees
    the old projects and runs; nothing is announced (users existed after the migration)."""
    from labwork.project import init_project
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    folders = [tmp_path / "a", tmp_path / "b"]
    for i, f in enumerate(folders, 1):
        init_project(f, f"proj{i}")
    _old_store(f"sqlite:///{home / 'labwork.db'}", folders)
    (home / "token").write_text("old-installation-token\n")
    (home / "token").chmod(0o600)
    cp = ControlPlane(home).start()
    try:
        assert cp.token == "old-installation-token"
        headers = cp.headers()
        assert httpx.get(f"{cp.url}/api/me", headers=headers).json() == {"id": 1, "name": "admin", "admin": True}
        assert sorted(p["name"] for p in cp.request("GET", "/api/projects")) == ["proj1", "proj2"]
        assert sorted(r["id"] for r in cp.runs()) == ["run1", "run2"]
        assert "created the administrator" not in cp.log_tail(100_000)
    finally:
        cp.stop()
