"""Reading run history: the queries the API routes, the CLI, the MLflow export and the dashboard
share, so that a run prefix and a filter mean the same everywhere.

* a run is named by its id or a unique prefix of at least 4 characters (`records.find_run`): an
  unknown one is NotFound, an ambiguous prefix Conflict naming the candidates;
* `project` matches a run's project folder or its project name (several refs: any of them);
* `notebook` matches the notebook path or its last part(s) (`iris.ipynb` matches `sub/iris.ipynb`);
* `status` is one status or several, comma separated; `since`/`until` bound the start time.

The dashboard's pages need pages, not whole runs: `list_run_summaries` (the list's columns only),
`run_overview` (one page of a run's entries, indexed by run id), `compare_runs` (2-3 runs' values).
Everything reads with Core in one connection, no ORM objects.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from labwork.errors import ConfigError, NotFound
from labwork.history.artifacts import latest_artifacts, run_artifact_dir
from labwork.history.encoding import for_json
from labwork.history.records import (RUN_STATUSES, entry_dict, find_run, iso, like_escape, run_dict,
                                     to_datetime, value_dict)
from labwork.history.tables import ArtifactRow, EntryRow, RunRow, ValueRow
from labwork.store.db import Store

COMPARE_MIN, COMPARE_MAX = 2, 3


# --- filters ------------------------------------------------------------------------------------------

def _filters(project: str | Sequence[str] | None, notebook: str | None, status: str | None,
             since: Any, until: Any, user: str | None = None) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a run filter (see the module's docstring), on indexed columns."""
    conds: list[ColumnElement[bool]] = []
    if user is not None and user.strip():
        conds.append(RunRow.user == user.strip())
    refs = [project] if isinstance(project, str) else list(project or [])
    refs = [r for r in (x.strip() for x in refs if isinstance(x, str)) if r]
    if refs:
        folders = {r for ref in refs for r in (ref, os.path.normpath(ref))}
        conds.append(or_(RunRow.project_dir.in_(folders), RunRow.project.in_(refs)))
    if notebook and notebook.strip():
        nb = notebook.strip()
        nb = nb[2:] if nb.startswith("./") else nb
        conds.append(or_(RunRow.notebook == nb, RunRow.notebook.like("%/" + like_escape(nb), escape="\\")))
    if status:
        wanted = [x.strip() for x in status.split(",") if x.strip()]
        bad = [x for x in wanted if x not in RUN_STATUSES]
        if bad:
            raise ConfigError(f"unknown run status {bad[0]!r}", where="status",
                              hint=f"one of {', '.join(RUN_STATUSES)}")
        if wanted:
            conds.append(RunRow.status.in_(wanted))
    if since is not None and since != "":
        conds.append(RunRow.started_at >= to_datetime(since, "since"))
    if until is not None and until != "":
        conds.append(RunRow.started_at <= to_datetime(until, "until"))
    return conds


def _page(limit: int, offset: int) -> tuple[int, int]:
    return max(1, min(int(limit), 1000)), max(0, int(offset))


# --- lists --------------------------------------------------------------------------------------------

def list_runs(store: Store, *, project: str | Sequence[str] | None = None, notebook: str | None = None,
              status: str | None = None, since: Any = None, until: Any = None, user: str | None = None,
              limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Runs, newest first, filtered; `{"runs": [...], "total": n, "limit": l, "offset": o}`.

    project: a project folder (absolute path) or a project name. notebook: a notebook path, or its
    last part(s). status: one status or several, comma separated. since/until: bounds on the start
    time (ISO 8601 or datetime). user: the name of who ran it."""
    limit, offset = _page(limit, offset)
    conds = _filters(project, notebook, status, since, until, user)
    table = RunRow.__table__
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(table).where(*conds)).scalar() or 0
        rows = conn.execute(select(table).where(*conds).order_by(table.c.started_at.desc(), table.c.id)
                            .limit(limit).offset(offset)).all()
    return {"runs": [run_dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}


SUMMARY_COLUMNS = ("id", "notebook", "project", "status", "started_at", "ended_at", "entry_count",
                   "error_count", "runconfig", "user")


def list_run_summaries(store: Store, *, project: str | Sequence[str] | None = None,
                       notebook: str | None = None, status: str | None = None, since: Any = None,
                       until: Any = None, user: str | None = None, limit: int = 50,
                       offset: int = 0) -> dict[str, Any]:
    """`list_runs` with only the columns a list of runs shows (`SUMMARY_COLUMNS`, times as stored
    datetimes): the busiest dashboard page reads no run's info or host. `{"runs", "total"}`."""
    limit, offset = _page(limit, offset)
    conds = _filters(project, notebook, status, since, until, user)
    cols = [getattr(RunRow, c) for c in SUMMARY_COLUMNS]
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(RunRow).where(*conds)).scalar() or 0
        rows = conn.execute(select(*cols).where(*conds).order_by(RunRow.started_at.desc(), RunRow.id)
                            .limit(limit).offset(offset)).all()
    return {"runs": [dict(r._mapping) for r in rows], "total": total}


# --- one run ------------------------------------------------------------------------------------------

def _entries(conn: Connection | Session, run_id: str) -> list[dict[str, Any]]:
    """A run's entries in order, by the run-id index."""
    table = EntryRow.__table__
    query = select(table).where(table.c.run_id == run_id).order_by(table.c.seq, table.c.started_at)
    return [entry_dict(e) for e in conn.execute(query)]


ENTRY_PAGE_COLUMNS = ("seq", "execution_count", "code", "started_at", "duration_ms", "status", "error_name",
                      "error_value", "traceback")


def _entries_page(conn: Connection | Session, run_id: str, limit: int, offset: int) -> list[dict[str, Any]]:
    """`limit` of a run's entries from `offset`, only the columns a page shows (`ENTRY_PAGE_COLUMNS`,
    times as stored datetimes), by the run-id index."""
    cols = [getattr(EntryRow, c) for c in ENTRY_PAGE_COLUMNS]
    query = (select(*cols).where(EntryRow.run_id == run_id).order_by(EntryRow.seq, EntryRow.started_at)
             .limit(limit).offset(offset))
    return [dict(e._mapping) for e in conn.execute(query)]


def _value_rows(conn: Connection | Session, run_id: str) -> list[Any]:
    table = ValueRow.__table__
    return conn.execute(select(table).where(table.c.run_id == run_id)
                        .order_by(table.c.name, table.c.seq, table.c.logged_at)).all()


def _by_name(rows: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Per logged name, in name order: `kinds`, `logs` (how often logged), `series` (every point,
    a logged list flattened; raw values, NaN and infinities as floats) and `last` (raw)."""
    out: dict[str, dict[str, Any]] = {}
    for v in rows:
        item = out.setdefault(v.name, {"name": v.name, "kinds": [], "logs": 0, "series": [], "last": None})
        if v.kind not in item["kinds"]:
            item["kinds"].append(v.kind)
        item["logs"] += 1
        item["series"].extend(v.value if isinstance(v.value, list) else [v.value])
        item["last"] = v.value
    return out


def logged_values(conn: Connection | Session, run_id: str) -> dict[str, dict[str, Any]]:
    """A run's logged values per name (see `_by_name`), for charts: only the columns they need."""
    return _by_name(conn.execute(select(ValueRow.name, ValueRow.value, ValueRow.kind)
                                 .where(ValueRow.run_id == run_id)
                                 .order_by(ValueRow.name, ValueRow.seq, ValueRow.logged_at)).all())


def get_run(store: Store, ref: str) -> dict[str, Any]:
    """One run (an id or a unique id prefix) with its entries, values and artifacts."""
    with store.engine.connect() as conn:
        row = find_run(conn, ref)
        out = run_dict(row)
        out["entries"] = _entries(conn, row.id)
        values = _value_rows(conn, row.id)
        out["values"] = [{"name": v["name"], "kinds": v["kinds"], "count": v["logs"],
                          "points": len(v["series"]), "last": for_json(v["last"]),
                          "kind": v["kinds"][0] if len(v["kinds"]) == 1 else "mixed",
                          "series": len(v["series"]) > 1}
                         for v in _by_name(values).values()]
        out["logged"] = [value_dict(v) for v in sorted(values, key=lambda v: (v.logged_at, v.seq))]
        out["artifacts"] = latest_artifacts(conn, row.id)
        return out


def run_overview(store: Store, ref: str, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """One run as its page shows it, read in one connection (see `overview_in`)."""
    with store.engine.connect() as conn:
        return overview_in(conn, ref, limit=limit, offset=offset)


def overview_in(conn: Connection | Session, ref: str, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """`run_overview` on a connection the caller holds (a page reads its own rows beside it):
    `run` (`run_dict`), `entries` (`limit` of them from `offset`, see `_entries_page`),
    `entries_total` (kept by ingestion, no count), `values` (per name, see `logged_values`) and
    `artifacts` (the newest of each path)."""
    limit, offset = _page(limit, offset)
    row = find_run(conn, ref)
    return {"run": run_dict(row), "entries": _entries_page(conn, row.id, limit, offset),
            "entries_total": row.entry_count or 0, "values": logged_values(conn, row.id),
            "artifacts": latest_artifacts(conn, row.id)}


def compare_runs(store: Store, refs: Sequence[str]) -> list[dict[str, Any]]:
    """Two or three runs (ids or unique prefixes; repeats count once), each `run_dict` with its
    logged values per name (`values`, see `logged_values`), in the order given."""
    wanted = list(dict.fromkeys(r.strip() for r in refs if r and r.strip()))
    if not COMPARE_MIN <= len(wanted) <= COMPARE_MAX:
        raise ConfigError(f"choose two or three runs to compare (got {len(wanted)})", where="run",
                          hints={"dashboard": "tick two or three runs in the list, then Compare"})
    out = []
    with store.engine.connect() as conn:
        for ref in wanted:
            row = find_run(conn, ref)
            out.append(run_dict(row) | {"values": logged_values(conn, row.id)})
    return out


def value_series(store: Store, ref: str, name: str) -> dict[str, Any]:
    """A logged value's points in order. A logged list contributes one point per element; steps
    count points from 0 across all logs of the name."""
    table = ValueRow.__table__
    with store.engine.connect() as conn:
        run_id = find_run(conn, ref).id
        values = conn.execute(select(table).where(table.c.run_id == run_id, table.c.name == name)
                              .order_by(table.c.seq, table.c.logged_at)).all()
    if not values:
        raise NotFound(f"run {run_id} has no value named '{name}'")
    points: list[dict[str, Any]] = []
    kinds: set[str] = set()
    for v in values:
        for item in v.value if isinstance(v.value, list) else [v.value]:
            kinds.add("string" if isinstance(item, str) else "number")
            points.append({"step": len(points), "value": for_json(item), "entry_id": v.entry_id,
                           "logged_at": iso(v.logged_at)})
    kind = kinds.pop() if len(kinds) == 1 else "mixed"
    return {"run_id": run_id, "name": name, "kind": kind, "points": points}


def delete_run(store: Store, artifacts_dir: Path, ref: str) -> dict[str, Any]:
    """Remove a run, its rows and its stored files."""
    with store.session() as s:
        run_id = find_run(s, ref).id
        for table in (ValueRow, ArtifactRow, EntryRow):
            s.execute(delete(table).where(table.run_id == run_id))
        s.execute(delete(RunRow).where(RunRow.id == run_id))
    shutil.rmtree(run_artifact_dir(artifacts_dir, run_id), ignore_errors=True)
    return {"deleted": run_id}
