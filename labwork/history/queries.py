"""Run history in the store: ingesting records exactly once, storing artifacts, and the queries the
API routes, the CLI and the dashboard share.

Records are plain dicts, the same shape the kernel sends (see docs/history.md, "Records"):

    {"id": "...", "type": "run" | "history" | "entry" | "value" | "end", "run": "<run id>", ...}

Each record's `id` is the primary key of the row it creates, so a record that arrives twice (a
replay after a lost answer) is counted as a duplicate and changes nothing.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labwork.errors import ConfigError, Conflict, Forbidden, NotFound
from labwork.history.tables import ArtifactRow, EntryRow, RunRow, ValueRow
from labwork.store.db import Store

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RECORD_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
RUN_STATUSES = ("running", "completed", "failed", "interrupted")
ENTRY_STATUSES = ("ok", "error", "interrupted")
MAX_CODE_CHARS = 1_000_000
MAX_TEXT_CHARS = 100_000


# --- small helpers ---------------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: Any, field: str = "time") -> datetime | None:
    """Epoch seconds, ISO text or datetime -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"'{field}' is not a date or time: {value!r}",
                              hint="use ISO 8601, e.g. 2024-05-01 or 2024-05-01T12:00:00") from exc
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    raise ConfigError(f"'{field}' is not a date or time: {value!r}")


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:  # SQLite gives back naive datetimes; everything is stored as UTC
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat()


def _clip(text: Any, limit: int = MAX_TEXT_CHARS) -> str | None:
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


def _require(record: dict[str, Any], key: str, kind: type | tuple = str) -> Any:
    value = record.get(key)
    if value is None or not isinstance(value, kind):
        raise ConfigError(f"record {record.get('id')!r} (type {record.get('type')!r}): "
                          f"'{key}' is missing or not {getattr(kind, '__name__', kind)}")
    return value


def value_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "number"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    raise ConfigError(f"a logged value must be a number, a string or a list, got {type(value).__name__}")


# --- row -> dict ------------------------------------------------------------------------------------

def run_dict(row: RunRow) -> dict[str, Any]:
    started = row.started_at
    ended = row.ended_at
    duration = None
    if started and ended:
        duration = round((_aware(ended) - _aware(started)).total_seconds(), 3)
    return {"id": row.id, "source": row.source, "project": row.project, "project_dir": row.project_dir,
            "notebook": row.notebook, "runconfig": row.runconfig, "kernel_id": row.kernel_id,
            "host": row.host, "pid": row.pid, "status": row.status, "history": bool(row.history),
            "started_at": iso(started), "ended_at": iso(ended), "duration_s": duration,
            "last_seen": iso(row.last_seen), "entry_count": row.entry_count,
            "error_count": row.error_count,
            "info": {k: v for k, v in (row.info or {}).items() if not k.startswith("_")}}


def entry_dict(row: EntryRow) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "seq": row.seq, "kind": row.kind,
            "execution_count": row.execution_count, "code": row.code,
            "started_at": iso(row.started_at), "ended_at": iso(row.ended_at),
            "duration_ms": row.duration_ms, "status": row.status, "error_name": row.error_name,
            "error_value": row.error_value, "traceback": row.traceback}


def value_dict(row: ValueRow) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "entry_id": row.entry_id, "name": row.name,
            "seq": row.seq, "kind": row.kind, "value": row.value, "logged_at": iso(row.logged_at)}


def artifact_dict(row: ArtifactRow, versions: int = 1) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "entry_id": row.entry_id, "path": row.path,
            "size": row.size, "sha256": row.sha256, "uploaded_at": iso(row.uploaded_at),
            "versions": versions}


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# --- ingestion ----------------------------------------------------------------------------------------

class _Batch:
    """One ingestion transaction: the runs it touches and the record ids already stored, fetched
    with one query per table instead of one per record."""

    def __init__(self, s: Session, records: list[dict[str, Any]]) -> None:
        self.s = s
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
        run_id = _require(record, "run")
        row = self.runs.get(run_id)
        if row is not None:
            return row
        if not RUN_ID.match(run_id):
            raise ConfigError(f"run id {run_id!r} must be 1-64 letters, digits, '_' or '-'")
        row = self.s.get(RunRow, run_id)
        if row is None:
            row = RunRow(id=run_id, source=str(record.get("source") or "kernel"), status="running",
                         history=False, started_at=_ts(record.get("at")) or _now(), entry_count=0,
                         error_count=0, info={})
            self.s.add(row)
            self.s.flush()  # no ORM relationship orders the inserts: the run row goes first
        self.runs[run_id] = row
        return row

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
    rid = _require(record, "id")
    if not RECORD_ID.match(rid):
        raise ConfigError(f"record id {rid!r} must be 1-100 letters, digits or '_.:-'")
    kind = _require(record, "type")
    run = b.run(record)
    at = _ts(record.get("at")) or _now()
    seen = _aware(run.last_seen) if run.last_seen else None
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

    if kind == "end":
        if run.ended_at is not None:
            return False
        run.ended_at = at
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
        started = _ts(record.get("started"), "started") or at
        ended = _ts(record.get("ended"), "ended")
        duration = record.get("duration_ms")
        if duration is None and ended is not None:
            duration = round((ended - started).total_seconds() * 1000.0, 3)
        b.s.add(EntryRow(id=rid, run_id=run.id, seq=int(record.get("seq") or 0),
                         kind=str(record.get("kind") or "cell"),
                         execution_count=record.get("execution_count"),
                         code=_clip(record.get("code") or "", MAX_CODE_CHARS) or "",
                         started_at=started, ended_at=ended, duration_ms=duration, status=status,
                         error_name=_clip(record.get("error_name"), 200),
                         error_value=_clip(record.get("error_value")),
                         traceback=_clip(record.get("traceback"))))
        run.entry_count = (run.entry_count or 0) + 1
        if status != "ok":
            run.error_count = (run.error_count or 0) + 1
        return True

    if kind == "value":
        name = _require(record, "name")
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
                      hint="types: run, history, entry, value, end (artifacts go to the upload route)")


def ingest(store: Store, records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Apply records in order, in one transaction; duplicates are counted and skipped."""
    records = list(records)
    for attempt in range(3):
        accepted = duplicates = 0
        try:
            with store.session() as s:
                batch = _Batch(s, records)
                for record in records:
                    if _apply(batch, record):
                        accepted += 1
                    else:
                        duplicates += 1
            return {"accepted": accepted, "duplicates": duplicates}
        except IntegrityError:
            # the same record arrived twice at once (a replay racing a retry): try again, the
            # second pass sees the first one's rows and skips them
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# --- artifacts ----------------------------------------------------------------------------------------

def check_upload_path(path: str) -> str:
    """A relative path under outputs/, normalized; anything else is refused by rule."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        raise Forbidden(f"refused '{path}': not a relative path under outputs/",
                        hint="upload files saved in the project's outputs/ folder, e.g. outputs/model.pkl")
    norm = posixpath.normpath(path)
    if path.startswith("/") or norm.startswith("..") or not norm.startswith("outputs/") or norm == "outputs":
        raise Forbidden(f"refused '{path}': only files under the project's outputs/ folder can be uploaded",
                        hint="save the file in outputs/ first, e.g. outputs/model.pkl")
    return norm


def run_artifact_dir(artifacts_dir: Path, run_id: str) -> Path:
    if not RUN_ID.match(run_id):
        raise NotFound(f"no run '{run_id}'")
    return Path(artifacts_dir) / run_id


def store_artifact(store: Store, artifacts_dir: Path, run_ref: str, path: str,
                   chunks: Iterable[bytes], *, artifact_id: str | None = None,
                   entry_id: str | None = None, max_mb: float | None = None) -> dict[str, Any]:
    """Copy an uploaded file into the artifact store (`artifacts_dir/<run>/<artifact id>`).

    The same `artifact_id` twice stores nothing new. Over `max_mb` is refused and nothing is kept.
    """
    import uuid

    max_bytes = None if max_mb is None else mb_to_bytes(max_mb)
    norm = check_upload_path(path)
    artifact_id = artifact_id or uuid.uuid4().hex
    if not RUN_ID.match(artifact_id):
        raise ConfigError(f"artifact id {artifact_id!r} must be 1-64 letters, digits, '_' or '-'")
    run = _resolve_run(store, run_ref)
    with store.session() as s:
        existing = s.get(ArtifactRow, artifact_id)
        if existing is not None:
            for _ in chunks:  # drain the body
                pass
            return artifact_dict(existing) | {"duplicate": True}
    folder = run_artifact_dir(artifacts_dir, run["id"])
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".incoming-{artifact_id}-{os.getpid()}"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as fh:
            for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise too_large(norm, None, max_mb)
                digest.update(chunk)
                fh.write(chunk)
        final = folder / artifact_id
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    row = ArtifactRow(id=artifact_id, run_id=run["id"], entry_id=entry_id, path=norm, size=size,
                      sha256=digest.hexdigest(), uploaded_at=_now())
    try:
        with store.session() as s:
            s.add(row)
    except IntegrityError:  # stored concurrently by a retry of the same upload
        pass
    return artifact_dict(row)


def mb_to_bytes(mb: float) -> int:
    return int(mb * 1024 * 1024)


def too_large(path: str, size: int | None, limit_mb: float) -> Forbidden:
    got = f"{size:,} bytes is " if size is not None else "it is "
    return Forbidden(f"refused '{path}': {got}over the upload size limit of {limit_mb:g} MB "
                     f"(history.max_upload_mb)",
                     hint="raise history.max_upload_mb in LABWORK_HOME/config.toml, or upload a smaller file")


def artifact_file(store: Store, artifacts_dir: Path, run_ref: str, path: str) -> tuple[Path, dict[str, Any]]:
    """The newest upload of `path` on a run: its file inside the store and its description.

    Only paths recorded on the run are served, and the file is found by artifact id, never by the
    requested path, so no request can reach outside the artifact store."""
    run = _resolve_run(store, run_ref)
    norm = posixpath.normpath(path) if path else ""
    with store.session() as s:
        row = s.scalars(select(ArtifactRow).where(ArtifactRow.run_id == run["id"], ArtifactRow.path == norm)
                        .order_by(ArtifactRow.uploaded_at.desc(), ArtifactRow.id.desc()).limit(1)).first()
        if row is None:
            raise NotFound(f"run {run['id']} has no artifact '{path}'",
                           hint="see the run's artifacts with 'labwork run show RUN'",
                           hints={"dashboard": "the run's page lists its outputs"})
        info = artifact_dict(row)
    root = Path(artifacts_dir).resolve()
    file = (run_artifact_dir(artifacts_dir, run["id"]) / info["id"]).resolve()
    if not file.is_relative_to(root) or not file.is_file():
        raise NotFound(f"the stored file of '{path}' on run {run['id']} is missing", where=str(file))
    return file, info


# --- queries ------------------------------------------------------------------------------------------

def _resolve_run(store: Store, ref: str) -> dict[str, Any]:
    with store.session() as s:
        return run_dict(_find_run(s, ref))


def _find_run(s: Session, ref: str) -> RunRow:
    ref = (ref or "").strip()
    if not RUN_ID.match(ref):
        raise NotFound(f"no run '{ref}'", hint="run ids are shown by 'labwork run list'",
                       hints={"dashboard": "the Run history page lists the runs"})
    row = s.get(RunRow, ref)
    if row is not None:
        return row
    if len(ref) >= 4:
        rows = s.scalars(select(RunRow).where(RunRow.id.like(ref.replace("_", r"\_") + "%", escape="\\"))
                         .limit(3)).all()
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            raise Conflict(f"run id prefix '{ref}' matches several runs", hint="give more characters")
    raise NotFound(f"no run '{ref}'", hint="run ids are shown by 'labwork run list'",
                       hints={"dashboard": "the Run history page lists the runs"})


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")


def list_runs(store: Store, *, project: str | None = None, notebook: str | None = None,
              status: str | None = None, since: Any = None, until: Any = None,
              limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Runs, newest first, filtered; `{"runs": [...], "total": n, "limit": l, "offset": o}`.

    project: a project folder (absolute path) or a project name. notebook: a notebook path, or its
    last part(s) (`iris.ipynb` matches `sub/iris.ipynb`). status: one status or several, comma
    separated. since/until: bounds on the start time (ISO 8601 or datetime)."""
    limit = max(1, min(int(limit), 1000))
    offset = max(0, int(offset))
    conds = []
    if project:
        names = {project, os.path.normpath(project)}
        conds.append(or_(RunRow.project_dir.in_(names), RunRow.project == project))
    if notebook:
        nb = notebook.strip().lstrip("./") if notebook.startswith("./") else notebook.strip()
        conds.append(or_(RunRow.notebook == nb,
                         RunRow.notebook.like("%/" + _like_escape(nb), escape="\\")))
    if status:
        wanted = [x.strip() for x in status.split(",") if x.strip()]
        bad = [x for x in wanted if x not in RUN_STATUSES]
        if bad:
            raise ConfigError(f"unknown run status {bad[0]!r}", where="status",
                              hint=f"one of {', '.join(RUN_STATUSES)}")
        conds.append(RunRow.status.in_(wanted))
    if since is not None and since != "":
        conds.append(RunRow.started_at >= _ts(since, "since"))
    if until is not None and until != "":
        conds.append(RunRow.started_at <= _ts(until, "until"))
    with store.session() as s:
        total = s.scalar(select(func.count()).select_from(RunRow).where(*conds)) or 0
        rows = s.scalars(select(RunRow).where(*conds)
                         .order_by(RunRow.started_at.desc(), RunRow.id).limit(limit).offset(offset)).all()
        return {"runs": [run_dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}


def get_run(store: Store, ref: str) -> dict[str, Any]:
    """One run (an id or a unique id prefix) with its entries, values and artifacts."""
    with store.session() as s:
        row = _find_run(s, ref)
        out = run_dict(row)
        out["entries"] = [entry_dict(e) for e in s.scalars(
            select(EntryRow).where(EntryRow.run_id == row.id).order_by(EntryRow.seq, EntryRow.started_at))]
        values = s.scalars(select(ValueRow).where(ValueRow.run_id == row.id)
                           .order_by(ValueRow.name, ValueRow.seq, ValueRow.logged_at)).all()
        summary: dict[str, dict[str, Any]] = {}
        for v in values:
            item = summary.setdefault(v.name, {"name": v.name, "kinds": [], "count": 0, "points": 0,
                                               "last": None})
            if v.kind not in item["kinds"]:
                item["kinds"].append(v.kind)
            item["count"] += 1
            item["points"] += len(v.value) if isinstance(v.value, list) else 1
            item["last"] = v.value
        for item in summary.values():
            item["kind"] = item["kinds"][0] if len(item["kinds"]) == 1 else "mixed"
            item["series"] = item["points"] > 1
        out["values"] = list(summary.values())
        out["logged"] = [value_dict(v) for v in sorted(values, key=lambda v: (v.logged_at, v.seq))]
        arts = s.scalars(select(ArtifactRow).where(ArtifactRow.run_id == row.id)
                         .order_by(ArtifactRow.path, ArtifactRow.uploaded_at.desc(), ArtifactRow.id.desc())).all()
        latest: dict[str, dict[str, Any]] = {}
        for a in arts:
            if a.path in latest:
                latest[a.path]["versions"] += 1
            else:
                latest[a.path] = artifact_dict(a)
        out["artifacts"] = list(latest.values())
        return out


def value_series(store: Store, ref: str, name: str) -> dict[str, Any]:
    """A logged value's points in order. A logged list contributes one point per element; steps
    count points from 0 across all logs of the name."""
    with store.session() as s:
        row = _find_run(s, ref)
        values = s.scalars(select(ValueRow).where(ValueRow.run_id == row.id, ValueRow.name == name)
                           .order_by(ValueRow.seq, ValueRow.logged_at)).all()
        if not values:
            raise NotFound(f"run {row.id} has no value named '{name}'")
        points: list[dict[str, Any]] = []
        kinds: set[str] = set()
        for v in values:
            items = v.value if isinstance(v.value, list) else [v.value]
            for item in items:
                kinds.add("string" if isinstance(item, str) else "number")
                points.append({"step": len(points), "value": item, "entry_id": v.entry_id,
                               "logged_at": iso(v.logged_at)})
        kind = kinds.pop() if len(kinds) == 1 else "mixed"
        return {"run_id": row.id, "name": name, "kind": kind, "points": points}


def delete_run(store: Store, artifacts_dir: Path, ref: str) -> dict[str, Any]:
    """Remove a run, its rows and its stored files."""
    with store.session() as s:
        row = _find_run(s, ref)
        run_id = row.id
        for table in (ValueRow, ArtifactRow, EntryRow):
            for r in s.scalars(select(table).where(table.run_id == run_id)):
                s.delete(r)
        s.delete(row)
    shutil.rmtree(run_artifact_dir(artifacts_dir, run_id), ignore_errors=True)
    return {"deleted": run_id}
