"""A run's uploaded outputs: the upload rule (only `outputs/...`), the size limit, and the artifact
store `LABWORK_HOME/artifacts/<run>/<artifact id>`.

A requested path is only ever looked up in the artifacts table; the file is found by artifact id,
never by joining the path onto the file system, so no request can reach outside the store.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labwork.errors import ConfigError, Forbidden, NotFound
from labwork.history.records import RUN_ID, artifact_dict, find_run, now
from labwork.history.tables import ArtifactRow
from labwork.private import open_private, private_dir
from labwork.store.db import Store


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
    """The folder of a run's stored files (a run id is never a path: checked here)."""
    if not RUN_ID.match(run_id):
        raise NotFound(f"no run '{run_id}'")
    return Path(artifacts_dir) / run_id


def mb_to_bytes(mb: float) -> int:
    return int(mb * 1024 * 1024)


def too_large(path: str, size: int | None, limit_mb: float) -> Forbidden:
    """The refusal of an upload over `history.max_upload_mb` (`size` when it was declared)."""
    got = f"{size:,} bytes is " if size is not None else "it is "
    return Forbidden(f"refused '{path}': {got}over the upload size limit of {limit_mb:g} MB "
                     f"(history.max_upload_mb)",
                     hint="raise history.max_upload_mb in LABWORK_HOME/config.toml, or upload a smaller file")


def store_artifact(store: Store, artifacts_dir: Path, run_ref: str, path: str,
                   chunks: Iterable[bytes], *, artifact_id: str | None = None,
                   entry_id: str | None = None, max_mb: float | None = None) -> dict[str, Any]:
    """Copy an uploaded file into the artifact store (`artifacts_dir/<run>/<artifact id>`).

    The same `artifact_id` twice stores nothing new. Over `max_mb` is refused and nothing is kept.
    """
    max_bytes = None if max_mb is None else mb_to_bytes(max_mb)
    norm = check_upload_path(path)
    artifact_id = artifact_id or uuid.uuid4().hex
    if not RUN_ID.match(artifact_id):
        raise ConfigError(f"artifact id {artifact_id!r} must be 1-64 letters, digits, '_' or '-'")
    with store.session() as s:
        run_id = find_run(s, run_ref).id
        existing = s.get(ArtifactRow, artifact_id)
        if existing is not None:
            for _ in chunks:  # drain the body
                pass
            return artifact_dict(existing) | {"duplicate": True}
    folder = private_dir(run_artifact_dir(artifacts_dir, run_id))
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
    row = ArtifactRow(id=artifact_id, run_id=run_id, entry_id=entry_id, path=norm, size=size,
                      sha256=digest.hexdigest(), uploaded_at=now())
    try:
        with store.session() as s:
            s.add(row)
    except IntegrityError:  # stored concurrently by a retry of the same upload
        pass
    return artifact_dict(row)


def latest_artifacts(conn: Connection | Session, run_id: str) -> list[dict[str, Any]]:
    """A run's outputs, the newest upload of each path with how many versions it has, by path."""
    table = ArtifactRow.__table__
    rows = conn.execute(select(table).where(table.c.run_id == run_id)
                        .order_by(table.c.path, table.c.uploaded_at.desc(), table.c.id.desc())).all()
    latest: dict[str, dict[str, Any]] = {}
    for a in rows:
        if a.path in latest:
            latest[a.path]["versions"] += 1
        else:
            latest[a.path] = artifact_dict(a)
    return list(latest.values())


def artifact_file(store: Store, artifacts_dir: Path, run_ref: str, path: str) -> tuple[Path, dict[str, Any]]:
    """The newest upload of `path` on a run: its file inside the store and its description.

    Only paths recorded on the run are served, and the file is found by artifact id, never by the
    requested path, so no request can reach outside the artifact store."""
    norm = posixpath.normpath(path) if path else ""
    table = ArtifactRow.__table__
    with store.engine.connect() as conn:
        run_id = find_run(conn, run_ref).id
        row = conn.execute(select(table).where(table.c.run_id == run_id, table.c.path == norm)
                           .order_by(table.c.uploaded_at.desc(), table.c.id.desc()).limit(1)).first()
        if row is None:
            raise NotFound(f"run {run_id} has no artifact '{path}'",
                           hint="see the run's artifacts with 'labwork run show RUN'",
                           hints={"dashboard": "the run's page lists its outputs"})
        info = artifact_dict(row)
    root = Path(artifacts_dir).resolve()
    file = (run_artifact_dir(artifacts_dir, run_id) / info["id"]).resolve()
    if not file.is_relative_to(root) or not file.is_file():
        raise NotFound(f"the stored file of '{path}' on run {run_id} is missing", where=str(file))
    return file, info
