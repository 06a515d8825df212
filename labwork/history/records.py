"""What every run-history module shares: the rules for ids and statuses, times, clipping, a run
looked up by id or unique prefix, and rows turned into the dicts the API answers with.

Records are plain dicts, the same shape the kernel sends (see docs/history.md, "Records"):

    {"id": "...", "type": "run" | "history" | "entry" | "value" | "seen" | "end", "run": "<run id>", ...}

JSON answers show non-finite numbers as "NaN", "Infinity", "-Infinity" (`encoding.for_json`).
The modules above this one: `ingestion` (records in), `artifacts` (uploaded files), `queries`
(reads), each importing from here and never from each other in a loop.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from labwork.errors import ConfigError, Conflict, NotFound
from labwork.history.encoding import for_json
from labwork.history.tables import ArtifactRow, EntryRow, RunRow, ValueRow

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RECORD_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
RUN_STATUSES = ("running", "completed", "failed", "interrupted")
ENTRY_STATUSES = ("ok", "error", "interrupted")
MAX_CODE_CHARS = 1_000_000
MAX_TEXT_CHARS = 100_000
MIN_PREFIX = 4  # a run id prefix shorter than this is not looked up
CANDIDATES_SHOWN = 5  # an ambiguous prefix's answer names this many of the runs it matches


# --- times, text, fields ------------------------------------------------------------------------------

def now() -> datetime:
    return datetime.now(UTC)


def aware(dt: datetime) -> datetime:
    """SQLite gives back naive datetimes; everything is stored as UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def to_datetime(value: Any, field: str = "time") -> datetime | None:
    """Epoch seconds, ISO text or datetime -> aware UTC datetime (None for nothing)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return aware(value)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"'{field}' is not a date or time: {value!r}",
                              hint="use ISO 8601, e.g. 2024-05-01 or 2024-05-01T12:00:00") from exc
        return aware(dt)
    raise ConfigError(f"'{field}' is not a date or time: {value!r}")


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else aware(dt).isoformat()


def clip(text: Any, limit: int = MAX_TEXT_CHARS) -> str | None:
    """Text kept to `limit` characters, saying how many were left out."""
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


def require(record: dict[str, Any], key: str, kind: type | tuple[type, ...] = str) -> Any:
    """`record[key]`, which must be there and of `kind` (ConfigError naming the record otherwise)."""
    value = record.get(key)
    if value is None or not isinstance(value, kind):
        raise ConfigError(f"record {record.get('id')!r} (type {record.get('type')!r}): "
                          f"'{key}' is missing or not {getattr(kind, '__name__', kind)}")
    return value


def value_kind(value: Any) -> str:
    """How a logged value is stored: number (bools too), string or list."""
    if isinstance(value, (bool, int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    raise ConfigError(f"a logged value must be a number, a string or a list, got {type(value).__name__}")


def like_escape(text: str) -> str:
    """Text matched literally by `LIKE ... ESCAPE '\\'`."""
    return text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")


# --- a run by id or prefix ------------------------------------------------------------------------------

def _no_run(ref: str) -> NotFound:
    return NotFound(f"no run '{ref}'", hint="run ids are shown by 'labwork run list'",
                    hints={"dashboard": "the Run history page lists the runs"})


def find_run(conn: Connection | Session, ref: str) -> Row[Any]:
    """The runs row (all columns, no ORM object) of an id or a unique id prefix of at least
    `MIN_PREFIX` characters: the one lookup of the API, the CLI and the dashboard.

    NotFound when nothing matches; Conflict naming the candidates when a prefix matches several."""
    ref = (ref or "").strip()
    if not RUN_ID.match(ref):
        raise _no_run(ref)
    table = RunRow.__table__
    row = conn.execute(select(table).where(table.c.id == ref)).first()
    if row is not None:
        return row
    if len(ref) >= MIN_PREFIX:
        rows = conn.execute(select(table).where(table.c.id.like(like_escape(ref) + "%", escape="\\"))
                            .order_by(table.c.id).limit(CANDIDATES_SHOWN + 1)).all()
        if len(rows) == 1:
            return rows[0]
        if rows:
            shown = ", ".join(r.id for r in rows[:CANDIDATES_SHOWN])
            more = " and more" if len(rows) > CANDIDATES_SHOWN else ""
            raise Conflict(f"run id prefix '{ref}' matches several runs: {shown}{more}",
                           hint="give more characters of the run id",
                           details={"candidates": [r.id for r in rows[:CANDIDATES_SHOWN]]})
    raise _no_run(ref)


# --- row -> dict (ORM objects and Core rows alike) --------------------------------------------------------

def run_dict(row: RunRow | Row[Any]) -> dict[str, Any]:
    started, ended = row.started_at, row.ended_at
    duration = None
    if started and ended:
        duration = round((aware(ended) - aware(started)).total_seconds(), 3)
    return {"id": row.id, "source": row.source, "project": row.project, "project_dir": row.project_dir,
            "notebook": row.notebook, "runconfig": row.runconfig, "user": row.user,
            "kernel_id": row.kernel_id, "host": row.host, "pid": row.pid, "status": row.status, "history": bool(row.history),
            "started_at": iso(started), "ended_at": iso(ended), "duration_s": duration,
            "last_seen": iso(row.last_seen), "entry_count": row.entry_count,
            "error_count": row.error_count,
            "info": for_json({k: v for k, v in (row.info or {}).items() if not k.startswith("_")})}


def entry_dict(row: EntryRow | Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "seq": row.seq, "kind": row.kind,
            "execution_count": row.execution_count, "code": row.code,
            "started_at": iso(row.started_at), "ended_at": iso(row.ended_at),
            "duration_ms": row.duration_ms, "status": row.status, "error_name": row.error_name,
            "error_value": row.error_value, "traceback": row.traceback}


def value_dict(row: ValueRow | Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "entry_id": row.entry_id, "name": row.name,
            "seq": row.seq, "kind": row.kind, "value": for_json(row.value), "logged_at": iso(row.logged_at)}


def artifact_dict(row: ArtifactRow | Row[Any], versions: int = 1) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "entry_id": row.entry_id, "path": row.path,
            "size": row.size, "sha256": row.sha256, "uploaded_at": iso(row.uploaded_at),
            "versions": versions}
