"""Run history in the store: storing artifacts, and the queries the API routes, the CLI and the
dashboard share (ingesting records: `labwork.history.ingestion`, re-exported as `ingest`).

Records are plain dicts, the same shape the kernel sends (see docs/history.md, "Records"):

    {"id": "...", "type": "run" | "history" | "entry" | "value" | "seen" | "end", "run": "<run id>", ...}

JSON answers show non-finite numbers as "NaN", "Infinity", "-Infinity" (`encoding.for_json`).
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
from labwork.history.encoding import for_json
from labwork.history.tables import ArtifactRow, EntryRow, RunRow, ValueRow
from labwork.private import open_private, private_dir
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
            "info": for_json({k: v for k, v in (row.info or {}).items() if not k.startswith("_")})}


def entry_dict(row: EntryRow) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "seq": row.seq, "kind": row.kind,
            "execution_count": row.execution_count, "code": row.code,
            "started_at": iso(row.started_at), "ended_at": iso(row.ended_at),
            "duration_ms": row.duration_ms, "status": row.status, "error_name": row.error_name,
            "error_value": row.error_value, "traceback": row.traceback}


def value_dict(row: ValueRow) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "entry_id": row.entry_id, "name": row.name,
            "seq": row.seq, "kind": row.kind, "value": for_json(row.value), "logged_at": iso(row.logged_at)}


def artifact_dict(row: ArtifactRow, versions: int = 1) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "entry_id": row.entry_id, "path": row.path,
            "size": row.size, "sha256": row.sha256, "uploaded_at": iso(row.uploaded_at),
            "versions": versions}


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# --- ingestion (labwork.history.ingestion) ------------------------------------------------------------

def ingest(store: Store, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Apply records in order, each on its own (see `labwork.history.ingestion.ingest`)."""
    from labwork.history.ingestion import ingest as _ingest
    return _ingest(store, records)


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
    folder = private_dir(run_artifact_dir(artifacts_dir, run["id"]))
    tmp = folder / f".incoming-{artifact_id}-{os.getpid()}"
    digest = hashlib.sha256()
    size = 0
    try:
        with open_private(tmp, "wb") as fh:
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
                           hint="see the run's artifacts with 'labwork run show RUN'")
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
        raise NotFound(f"no run '{ref}'", hint="run ids are shown by 'labwork run list'")
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
    raise NotFound(f"no run '{ref}'", hint="run ids are shown by 'labwork run list'")


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
            item["last"] = for_json(v.value)
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
                points.append({"step": len(points), "value": for_json(item), "entry_id": v.entry_id,
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
