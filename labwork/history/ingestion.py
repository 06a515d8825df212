"""Ingesting records exactly once, each on its own, and closing runs whose kernel stopped reporting.

Records are plain dicts, the same shape the kernel sends (see docs/history.md, "Records"). Each
record's `id` is the primary key of the row it creates, so a record that arrives twice (a replay
after a lost answer) is counted as a duplicate and changes nothing. Each record is applied in its
own savepoint: one that cannot be stored is refused alone, with why, and the others land.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from labwork.errors import ConfigError, Forbidden, LabworkError, Unavailable
from labwork.history.records import (ENTRY_STATUSES, MAX_CODE_CHARS, RECORD_ID, RUN_ID, RUN_STATUSES,
                                     aware, clip, now, require, run_dict, to_datetime, value_kind)
from labwork.history.tables import EntryRow, RunRow, ValueRow
from labwork.store.db import Store


class _Batch:
    """One ingestion transaction: the runs it touches and the record ids already stored, fetched
    with one query per table instead of one per record."""

    def __init__(self, s: Session, records: list[dict[str, Any]], user: str | None = None,
                 only_own: bool = False) -> None:
        self.s = s
        self.user = user  # who delivers them (the authenticated caller): whose new runs these are
        self.only_own = only_own  # refuse records for another user's run
        self.runs: dict[str, RunRow] = {}
        self.seen: dict[type, set[str]] = {}
        wanted: dict[type, list[str]] = {EntryRow: [], ValueRow: []}
        for rec in records:
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                table = {"entry": EntryRow, "value": ValueRow}.get(rec.get("type"))
                if table is not None:
                    wanted[table].append(rec["id"])
        for table, ids in wanted.items():
            found: set[str] = set()
            for i in range(0, len(ids), 500):
                found.update(s.scalars(select(table.id).where(table.id.in_(ids[i:i + 500]))))
            self.seen[table] = found

    def run(self, record: dict[str, Any]) -> RunRow:
        """The record's run, created from what the record says when it is not known yet."""
        run_id = require(record, "run")
        row = self.runs.get(run_id)
        if row is not None:
            return row
        if not RUN_ID.match(run_id):
            raise ConfigError(f"run id {run_id!r} must be 1-64 letters, digits, '_' or '-'")
        row = self.s.get(RunRow, run_id)
        if row is None:
            row = RunRow(id=run_id, source=str(record.get("source") or "kernel"), status="running",
                         history=False, started_at=to_datetime(record.get("at")) or now(), entry_count=0,
                         error_count=0, info={}, user=self.user)
            self.s.add(row)
            self.s.flush()  # no ORM relationship orders the inserts: the run row goes first
        elif self.only_own and row.user is not None and row.user != self.user:
            raise Forbidden(f"run {run_id} is {row.user}'s: {self.user or 'this caller'} cannot add to it",
                            where=f"run {run_id}")
        elif row.user is None and self.user is not None:  # set once, by the first who delivers
            row.user = self.user
        self.runs[run_id] = row
        return row

    def forget(self, record: Any) -> None:
        """After a record's savepoint was rolled back: what it touched is no longer known."""
        self.runs.clear()
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            for seen in self.seen.values():
                seen.discard(record["id"])

    def first_time(self, table: type, rid: str) -> bool:
        seen = self.seen[table]
        if rid in seen:
            return False
        seen.add(rid)
        return True


def _apply(b: _Batch, record: dict[str, Any]) -> bool:
    """Apply one record; False when it was already applied."""
    if not isinstance(record, dict):
        raise ConfigError("a record must be a JSON object")
    rid = require(record, "id")
    if not RECORD_ID.match(rid):
        raise ConfigError(f"record id {rid!r} must be 1-100 letters, digits or '_.:-'")
    kind = require(record, "type")
    run = b.run(record)
    at = to_datetime(record.get("at")) or now()
    seen = aware(run.last_seen) if run.last_seen else None
    if seen is None or at > seen:
        run.last_seen = at

    if kind == "run":
        if (run.info or {}).get("_run_record") == rid:
            return False
        for key in ("project", "project_dir", "notebook", "runconfig", "kernel_id", "host"):
            if record.get(key) is not None:
                setattr(run, key, str(record[key]))
        if record.get("pid") is not None:
            run.pid = int(record["pid"])
        if record.get("source"):
            run.source = str(record["source"])
        if record.get("history") is not None:
            run.history = bool(record["history"])
        if record.get("at") is not None:
            run.started_at = at
        run.info = {k: v for k, v in (run.info or {}).items() if k.startswith("_")} \
            | dict(record.get("info") or {}) | {"_run_record": rid}
        return True

    if kind == "history":
        info = dict(run.info or {})
        done = info.get("_switches", [])
        if rid in done:
            return False
        info["_switches"] = (done + [rid])[-50:]
        run.info = info
        run.history = bool(record.get("on"))
        return True

    if kind == "seen":  # a kernel's heartbeat: last_seen (above) is all it changes
        return True

    if kind == "end":
        if run.ended_at is not None:
            return False
        run.ended_at = at
        info = {k: v for k, v in (run.info or {}).items() if k not in ("end_reason", "_ended_by")}
        if record.get("reason"):
            info["end_reason"] = str(record["reason"])[:500]
        if record.get("by"):
            info["_ended_by"] = str(record["by"])
        run.info = info
        last = b.s.scalars(select(EntryRow).where(EntryRow.run_id == run.id)
                           .order_by(EntryRow.seq.desc()).limit(1)).first()
        run.status = {"error": "failed", "interrupted": "interrupted"}.get(last.status if last else "ok",
                                                                           "completed")
        if record.get("status") in RUN_STATUSES:
            run.status = record["status"]
        return True

    if kind == "entry":
        status = record.get("status") or "ok"
        if status not in ENTRY_STATUSES:
            raise ConfigError(f"entry {rid}: status must be one of {', '.join(ENTRY_STATUSES)}, got {status!r}")
        if not b.first_time(EntryRow, rid):
            return False
        if run.ended_at is not None and (run.info or {}).get("_ended_by") == "session" \
                and record.get("kind") == "cell":
            # the kernel outlived its Spark session (`%%configure -f`, a session deleted from the
            # dashboard) and goes on with a new one: its run is open again until the kernel ends
            run.ended_at = None
            run.status = "running"
            run.info = {k: v for k, v in (run.info or {}).items() if k not in ("end_reason", "_ended_by")}
        started = to_datetime(record.get("started"), "started") or at
        ended = to_datetime(record.get("ended"), "ended")
        duration = record.get("duration_ms")
        if duration is None and ended is not None:
            duration = round((ended - started).total_seconds() * 1000.0, 3)
        b.s.add(EntryRow(id=rid, run_id=run.id, seq=int(record.get("seq") or 0),
                         kind=str(record.get("kind") or "cell"),
                         execution_count=record.get("execution_count"),
                         code=clip(record.get("code") or "", MAX_CODE_CHARS) or "",
                         started_at=started, ended_at=ended, duration_ms=duration, status=status,
                         error_name=clip(record.get("error_name"), 200),
                         error_value=clip(record.get("error_value")),
                         traceback=clip(record.get("traceback"))))
        run.entry_count = (run.entry_count or 0) + 1
        if status != "ok":
            run.error_count = (run.error_count or 0) + 1
        return True

    if kind == "value":
        name = require(record, "name")
        if not name or len(name) > 200:
            raise ConfigError(f"value {rid}: a name must be 1-200 characters")
        value = record.get("value")
        kind_ = value_kind(value)
        if not b.first_time(ValueRow, rid):
            return False
        b.s.add(ValueRow(id=rid, run_id=run.id, entry_id=record.get("entry"), name=name,
                         seq=int(record.get("seq") or 0), kind=kind_, value=value, logged_at=at))
        return True

    raise ConfigError(f"record {rid}: unknown type {kind!r}",
                      hint="types: run, history, entry, value, seen, end (artifacts go to the upload route)")


def _refusal(exc: Exception) -> str:
    if isinstance(exc, LabworkError):
        return exc.message
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"the database refused it: {str(exc.orig).splitlines()[0][:300]}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"


def ingest(store: Store, records: Iterable[dict[str, Any]], user: str | None = None, *,
           only_own: bool = False) -> dict[str, Any]:
    """Apply records in order, each in its own savepoint: a record that cannot be stored is refused
    alone and the others land. Duplicates are counted and skipped. A run they create is `user`'s
    (the authenticated sender's; never a name a record claims); with `only_own` (a sender who is
    no administrator) a record for another user's run is refused.

    Returns `{"accepted": n, "duplicates": n, "refused": [{"index", "id", "type", "error"}, ...]}`. An
    unreachable database raises `Unavailable` (the sender keeps the records and tries again)."""
    records = list(records)
    accepted = duplicates = 0
    refused: list[dict[str, Any]] = []
    try:
        with store.session() as s:
            batch = _Batch(s, records, user, only_own)
            for index, record in enumerate(records):
                savepoint = s.begin_nested()
                try:
                    applied = _apply(batch, record)
                    s.flush()
                    savepoint.commit()
                except OperationalError:
                    raise
                except IntegrityError as exc:
                    # the same record arrived twice at once (a replay racing a retry): the other
                    # one is stored now, so this one is a duplicate; anything else is refused
                    savepoint.rollback()
                    batch.forget(record)
                    if _stored(s, record):
                        duplicates += 1
                    else:
                        refused.append(_refused(index, record, exc))
                except (LabworkError, SQLAlchemyError, ValueError, TypeError, OverflowError) as exc:
                    savepoint.rollback()
                    batch.forget(record)
                    refused.append(_refused(index, record, exc))
                else:
                    if applied:
                        accepted += 1
                    else:
                        duplicates += 1
    except OperationalError as exc:
        raise Unavailable(f"the run-history database is not answering: {_refusal(exc)}",
                          hint="the records are kept by the kernel and sent again") from exc
    return {"accepted": accepted, "duplicates": duplicates, "refused": refused}


def _refused(index: int, record: Any, exc: Exception) -> dict[str, Any]:
    rec = record if isinstance(record, dict) else {}
    return {"index": index, "id": rec.get("id") if isinstance(rec.get("id"), str) else None,
            "type": rec.get("type") if isinstance(rec.get("type"), str) else None,
            "error": _refusal(exc)}


def _stored(s: Session, record: Any) -> bool:
    table = {"entry": EntryRow, "value": ValueRow}.get(record.get("type")) if isinstance(record, dict) else None
    rid = record.get("id") if isinstance(record, dict) else None
    return table is not None and isinstance(rid, str) and s.get(table, rid) is not None


STALE_REASON = "kernel stopped reporting"


def reap_stale_runs(store: Store, stale_after_s: float, alive: Any = None) -> list[str]:
    """Close the running runs not heard from for `stale_after_s` seconds (a kernel killed, a host
    gone): status failed, ended when last seen, reason "kernel stopped reporting". `alive(run)`
    may spare a run whose owner is known to live (a gateway session still open)."""
    from datetime import timedelta
    cutoff = now() - timedelta(seconds=stale_after_s)
    closed: list[str] = []
    with store.session() as s:
        rows = s.scalars(select(RunRow).where(RunRow.ended_at.is_(None), or_(
            RunRow.last_seen < cutoff, (RunRow.last_seen.is_(None) & (RunRow.started_at < cutoff))))).all()
        for row in rows:
            if alive is not None and alive(run_dict(row)):
                row.last_seen = now()
                continue
            row.ended_at = row.last_seen or row.started_at
            row.status = "failed"
            row.info = dict(row.info or {}) | {"end_reason": STALE_REASON}
            closed.append(row.id)
    return closed
