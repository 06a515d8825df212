"""Kernel launches and the recent-notebooks list built from them.

Every kernel a labwork server starts is recorded (`KernelLaunchRow`): the notebook path (the
kernel's `JPY_SESSION_NAME`, stored relative to the project), run configuration, the server's
configuration and the time. `recent_notebooks` gives one entry per notebook, newest first, with the
configuration it last ran with — what "Open in Jupyter" starts the server with.
"""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select

from labwork.notebooks.config import parse_config
from labwork.store.db import Store
from labwork.auth.users import UserRef
from labwork.store.tables import KernelLaunchRow, ServerRow


def relative_notebook(root: str | Path, notebook: str | None) -> str | None:
    """A notebook path as given by Jupyter (relative or absolute) relative to the project."""
    if not notebook:
        return None
    root = Path(root).resolve()
    p = Path(notebook)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(root).as_posix()
        except ValueError:
            return p.as_posix()  # outside the project: kept as given, never opened
    return p.as_posix().lstrip("/")


def record_launch(store: Store, project: dict[str, Any], *, runconfig: str, notebook: str | None = None,
                  server_id: int | None = None, kernel_id: str | None = None,
                  server_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store one kernel launch. Without `server_config`, the server's recorded one is used."""
    with store.session() as s:
        server = s.get(ServerRow, server_id) if server_id else None
        if server is not None and server.project_id != project["id"]:
            server = None  # a stale id from another project: keep the launch, drop the link
        if not server_config:  # none given: the configuration of the server that started the kernel
            server_config = dict(server.config) if server is not None else {}
        config = parse_config(server_config).model_dump(mode="json")
        row = KernelLaunchRow(project_id=project["id"], server_id=server.id if server else None,
                              kernel_id=kernel_id, notebook=relative_notebook(project["path"], notebook),
                              runconfig=runconfig, server_config=config, started_at=datetime.now(UTC))
        s.add(row)
        s.flush()
        return launch_dict(row)


def record_spark_ui(store: Store, kernel_id: str, spark_ui_url: str,
                    proxy_path: str | None = None, user: UserRef | None = None) -> dict[str, Any]:
    """A PySpark-in-kernel driver reports its Spark UI (and where the control plane proxies it,
    when the driver started with that proxyBase); the kernel's launch keeps them. Only the
    kernel's own user (the user of its server; for a kernel of no server, a member of its
    project) or an administrator may say where its UI is: the proxy forwards there."""
    from urllib.parse import urlsplit

    from labwork.auth.members import role_of
    from labwork.errors import ConfigError, NotFound
    if urlsplit(spark_ui_url).scheme not in ("http", "https") or not urlsplit(spark_ui_url).netloc:
        raise ConfigError(f"spark_ui_url must be an http(s) address, got {spark_ui_url[:100]!r}",
                          where="spark_ui_url")
    missing = NotFound(f"no launch recorded for kernel '{kernel_id[:100]}'")
    with store.session() as s:
        row = s.scalars(select(KernelLaunchRow).where(KernelLaunchRow.kernel_id == kernel_id)
                        .order_by(KernelLaunchRow.id.desc()).limit(1)).first()
        if row is None:
            raise missing
        server = s.get(ServerRow, row.server_id) if row.server_id is not None else None
        if user is not None and not user.admin:
            mine = server.user_id == user.id if server is not None \
                else role_of(store, user, row.project_id) is not None
            if not mine:
                raise missing  # someone else's kernel: as an unknown one
        row.spark_ui_url = spark_ui_url
        row.spark_ui_proxy = proxy_path if proxy_path == f"/spark/kernel-{kernel_id}" else None
        return launch_dict(row)


def spark_ui_by_kernel(store: Store, kernel_ids: list[str]) -> dict[str, str]:
    if not kernel_ids:
        return {}
    from sqlalchemy import select
    with store.session() as s:
        rows = s.execute(select(KernelLaunchRow.kernel_id, KernelLaunchRow.spark_ui_url,
                                KernelLaunchRow.spark_ui_proxy)
                         .where(KernelLaunchRow.kernel_id.in_(kernel_ids),
                                KernelLaunchRow.spark_ui_url.is_not(None))).all()
    # the proxied path where there is one: it works from any browser that reaches the control plane
    return {kid: (f"{proxied}/" if proxied else url) for kid, url, proxied in rows}


def launch_dict(row: KernelLaunchRow) -> dict[str, Any]:
    return {"id": row.id, "project_id": row.project_id, "server_id": row.server_id,
            "kernel_id": row.kernel_id, "notebook": row.notebook, "runconfig": row.runconfig,
            "server_config": row.server_config, "started": _iso(row.started_at),
            "spark_ui_url": row.spark_ui_url, "spark_ui_proxy": row.spark_ui_proxy}


def _launched_by(user_id: int | None) -> Any:
    """The where-clause of launches in `user_id`'s servers (each user's recent notebooks), and
    of those in no server (a job's, a kernel started by hand): the project's, everyone's."""
    return or_(KernelLaunchRow.server_id.is_(None),
               KernelLaunchRow.server_id.in_(select(ServerRow.id).where(ServerRow.user_id == user_id)))


def recent_notebooks(store: Store, project: dict[str, Any], limit: int = 50,
                     user_id: int | None = None) -> list[dict[str, Any]]:
    """One entry per notebook, newest first: {notebook, runconfig, server_config, last_run,
    kernel_id, server_id, exists}; only those run in `user_id`'s servers when given."""
    root = Path(project["path"])
    seen: dict[str, dict[str, Any]] = {}
    with store.session() as s:
        mine = [_launched_by(user_id)] if user_id is not None else []
        rows = s.scalars(select(KernelLaunchRow)
                         .where(KernelLaunchRow.project_id == project["id"],
                                KernelLaunchRow.notebook.is_not(None), *mine)
                         .order_by(KernelLaunchRow.started_at.desc(), KernelLaunchRow.id.desc())
                         .limit(limit * 20))
        for row in rows:
            if row.notebook in seen:
                continue
            seen[row.notebook] = {"notebook": row.notebook, "runconfig": row.runconfig,
                                  "server_config": row.server_config, "last_run": _iso(row.started_at),
                                  "kernel_id": row.kernel_id, "server_id": row.server_id,
                                  "exists": (root / row.notebook).is_file()}
            if len(seen) >= limit:
                break
    return list(seen.values())


def last_config(store: Store, project: dict[str, Any], notebook: str,
                user_id: int | None = None) -> dict[str, Any] | None:
    """The server configuration `notebook` (relative to the project) last ran with, if any: in
    `user_id`'s servers when it ran there, else in anyone's."""
    base = select(KernelLaunchRow).where(KernelLaunchRow.project_id == project["id"],
                                         KernelLaunchRow.notebook == notebook)
    newest = (KernelLaunchRow.started_at.desc(), KernelLaunchRow.id.desc())
    with store.session() as s:
        row = s.scalar(base.where(_launched_by(user_id)).order_by(*newest).limit(1)) \
            if user_id is not None else None
        if row is None:
            row = s.scalar(base.order_by(*newest).limit(1))
        return dict(row.server_config) if row is not None else None


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:  # SQLite gives naive datetimes back
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat()
