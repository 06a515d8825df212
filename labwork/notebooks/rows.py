"""A server's row as the API shows it: its fields, its addresses, times in ISO form; finding a
project's server row; its log read back (a chunk from an offset, the last meaningful line) and
old logs pruned."""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import func, select

from labwork.errors import NotFound
from labwork.processes import tail
from labwork.store.db import Store
from labwork.auth.tables import UserRow
from labwork.auth.users import UserRef
from labwork.store.tables import ProjectRow, ServerRow

log = logging.getLogger("labwork.notebooks")

ACTIVE = ("starting", "running", "stopping")
# The dashboard's phrasing of the hint (the CLI's names its command).
START_HINTS = {"dashboard": "start one with Start on the project's Jupyter page"}
LOG_CHUNK = 1 << 20  # at most 1 MiB of log per `logs` call


def now() -> datetime:
    return datetime.now(UTC)


def aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:  # SQLite returns naive datetimes
        return dt.replace(tzinfo=UTC)
    return dt


def iso(dt: datetime | None) -> str | None:
    dt = aware(dt)
    return dt.isoformat() if dt else None


PROXY_ROOT = "/user"  # the control plane's mount of users' servers (labwork.server.user_proxy)


def proxy_prefix(user_name: str, project: dict[str, Any], same_name: int = 1) -> str:
    """Where a user's server for `project` is proxied: /user/<name>/<project>. The project's name
    when no other registered project has it (`same_name`, how many have it), else name~id (`~`
    is in no project name, and URL-safe). User and project names are URL-safe by their rules."""
    segment = project["name"] if same_name <= 1 else f"{project['name']}~{project['id']}"
    return f"{PROXY_ROOT}/{user_name}/{segment}"


def server_prefix(s, project: dict[str, Any], user: UserRef | None) -> str:
    """The base_url path of `user`'s server for `project` ("" for labwork's own: not proxied)."""
    if user is None:
        return ""
    same = s.scalar(select(func.count()).select_from(ProjectRow).where(ProjectRow.name == project["name"]))
    return proxy_prefix(user.name, project, same or 1)


def whose(user: UserRef | None) -> str:
    """" (user alice)" for messages about a user's server ("" for labwork's own)."""
    return f" (user {user.name})" if user is not None else ""


def proxy_path(row: ServerRow) -> str | None:
    """The path of the row's server through the control plane (its base_url), None when it was
    started without one (not proxied)."""
    if not row.url:
        return None
    path = urlsplit(row.url).path.rstrip("/")
    return path if path.startswith(PROXY_ROOT + "/") else None


def proxy_ui_url(row: ServerRow, notebook: str | None = None) -> str | None:
    """The UI (or a notebook in it) through the control plane, a path on its origin."""
    base = proxy_path(row)
    if base is None:
        return None
    if notebook is None:
        return f"{base}/{'lab' if row.ui == 'lab' else 'tree'}"
    page = "lab/tree" if row.ui == "lab" else "notebooks"
    return f"{base}/{page}/{quote(notebook)}"


def server_url(row: ServerRow) -> str | None:
    """The UI's address with the token (what a person opens)."""
    if not row.url:
        return None
    page = "lab" if row.ui == "lab" else "tree"
    return f"{row.url}/{page}?token={row.token}"


def notebook_url(row: ServerRow, notebook: str) -> str:
    page = "lab/tree" if row.ui == "lab" else "notebooks"
    return f"{row.url}/{page}/{quote(notebook)}?token={row.token}"


def row_fields(row: ServerRow, project: dict[str, Any] | None = None,
               users: dict[int, str] | None = None) -> dict[str, Any]:
    """The fields of `ServerSummary` for a row (the token and URLs only while it is active);
    `users` names the users by id (`user_names`)."""
    deadline = aware(row.deadline)
    active = row.state in ACTIVE
    left = None
    if active and deadline is not None:
        left = max(0, int((deadline - now()).total_seconds()))
    return {
        "id": row.id, "project": project, "state": row.state, "ui": row.ui, "config": row.config,
        "user": (users or {}).get(row.user_id) if row.user_id is not None else None,
        "port": row.port, "base_url": row.url, "url": server_url(row) if active else None,
        "proxy_url": proxy_ui_url(row) if active else None,
        "token": row.token if active else None, "pid": row.pid,
        "started": iso(row.started_at), "deadline": iso(deadline), "seconds_left": left,
        "no_limit": deadline is None, "stopped": iso(row.stopped_at), "stop_reason": row.stop_reason,
        "log_path": row.log_path,
    }


def projects_by_id(s, ids: set[int]) -> dict[int, dict[str, Any]]:
    rows = s.scalars(select(ProjectRow).where(ProjectRow.id.in_(ids))) if ids else []
    return {r.id: {"id": r.id, "name": r.name, "path": r.path} for r in rows}


def user_names(s, ids: set[int | None]) -> dict[int, str]:
    """User names by id (for a list of rows' `user`)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(s.execute(select(UserRow.id, UserRow.name).where(UserRow.id.in_(wanted))).all())


def brief(project: dict[str, Any]) -> dict[str, Any]:
    return {"id": project["id"], "name": project["name"], "path": project["path"]}


def last_meaningful_line(path: str | Path) -> str:
    """The server's own last line (not labwork's notes), for a stop reason."""
    for line in reversed(tail(path, 40)):
        if line.strip() and not line.startswith("[labwork]"):
            return line.strip()[:300]
    return ""


def read_chunk(path: Path, offset: int) -> tuple[str, int, int]:
    """Whole lines from byte `offset` (at most LOG_CHUNK): (text, next offset, file size)."""
    size = path.stat().st_size
    offset = max(0, int(offset))
    if offset > size:  # the file was replaced: start over
        offset = 0
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(LOG_CHUNK)
    if len(data) == LOG_CHUNK and b"\n" in data:  # whole lines only, so UTF-8 never splits
        data = data[:data.rindex(b"\n") + 1]
    return data.decode("utf-8", errors="replace"), offset + len(data), size


def of_user(user_id: int | None):
    """The where-clause of one user's servers (None: the ones labwork started itself)."""
    return ServerRow.user_id.is_(None) if user_id is None else ServerRow.user_id == user_id


def server_row(s, project: dict[str, Any], server_id: int | None, user_id: int | None = None) -> ServerRow:
    """The user's server `server_id` of the project, or their newest one; `NotFound` saying which
    is missing."""
    if server_id is None:
        row = s.scalar(select(ServerRow).where(ServerRow.project_id == project["id"], of_user(user_id))
                       .order_by(ServerRow.id.desc()).limit(1))
        if row is None:
            raise NotFound(f"project '{project['name']}' has had no Jupyter server yet",
                           hint="start one with 'labwork notebook start'", hints=START_HINTS)
        return row
    row = s.get(ServerRow, int(server_id))
    if row is None or row.project_id != project["id"] or row.user_id != user_id:
        raise NotFound(f"no server {server_id} in project '{project['name']}'",
                       hint="'labwork notebook status' shows the current one",
                       hints={"dashboard": "the project's Jupyter page shows the current one"})
    return row


def kernel_ends_file(log_path: Path | str) -> Path:
    """The server's file of kernel ends (labwork.kernels.ends), next to its log."""
    path = Path(log_path)
    return path.with_name(path.stem + ".kernel-ends.jsonl")


def prune_logs(store: Store, project_id: int, kept: int, user_id: int | None = None) -> None:
    """Delete the logs of the user's servers of the project older than their newest `kept` (at
    least one): one user's many restarts never cost another user their logs."""
    with store.session() as s:
        old = s.scalars(select(ServerRow).where(ServerRow.project_id == project_id, of_user(user_id))
                        .order_by(ServerRow.id.desc()).offset(max(1, kept))).all()
        paths = [r.log_path for r in old if r.state not in ACTIVE and r.log_path]
    for p in paths:
        try:
            Path(p).unlink(missing_ok=True)
            kernel_ends_file(p).unlink(missing_ok=True)
        except OSError:
            log.warning("cannot delete old log %s", p)
