"""/api/servers, /api/projects/{ref}/server, /api/projects/{ref}/notebooks, /api/kernels/launched.

Thin: each route calls one `ServerManager` method or library function (labwork.notebooks).
Shapes are documented in docs/notebooks.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from labwork.auth.identity import current_user, identity_of, require_token
from labwork.http_params import IdField, IdQuery, OffsetQuery
from labwork.notebooks.models import LogChunk, OpenResult, ServerHistoryEntry, ServerStatus, ServerSummary
from labwork.notebooks.preview import PREVIEW_CSP, list_notebooks, notebook_in_project
from labwork.notebooks.preview_cache import shared_previews
from labwork.notebooks.recent import record_launch, record_spark_ui
from labwork.project.registry import get_project_row
from labwork.server import deps
from labwork.auth.server_access import servers_seen_by, whose_server
from labwork.auth.users import UserRef

router = APIRouter(tags=["notebooks"], dependencies=[Depends(require_token)])
# Whose server: the caller's by default; a project owner or an administrator may name another member.
UserQuery = Query(None, max_length=64, description="whose server (default: yours); another member's "
                  "needs the project's owner role or an administrator")


def _whose(request: Request, ref: str, name: str | None) -> UserRef:
    """The user whose server of project `ref` the request names (labwork.auth.server_access)."""
    return whose_server(deps.store(request), current_user(request), ref, name)


class ExtendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hours: float | None = None  # null = no limit; absent = settings.extend_hours


class OpenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notebook: str


class LaunchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project_path: str
    runconfig: str = ""
    server_id: IdField | None = None
    kernel_id: str | None = None
    notebook: str | None = None
    server_config: dict[str, Any] | None = None


@router.get("/api/servers", response_model=list[ServerSummary])
def servers(request: Request, all: bool = False) -> list[dict[str, Any]]:
    """Running servers the caller may see (`?all=true`: stopped ones too, newest first): their
    own, everyone's in projects they own, all of them to an administrator."""
    return servers_seen_by(deps.store(request), current_user(request), deps.servers(request).list(include_stopped=all))


@router.get("/api/projects/{ref}/server", response_model=ServerStatus)
def server_status(ref: str, request: Request, user: str | None = UserQuery) -> dict[str, Any]:
    return deps.servers(request).status(ref, user=_whose(request, ref, user))


@router.post("/api/projects/{ref}/server", status_code=201, response_model=ServerStatus)
def server_start(ref: str, request: Request,
                 config: dict[str, Any] | None = Body(default=None, examples=[{
                     "kind": "spark", "ui": "lab", "hours": 6,
                     "spark": {"driver_memory": "2g", "properties": "spark.sql.shuffle.partitions=8"}}])
                 ) -> dict[str, Any]:
    """Start the caller's server of the project with a ServerConfig (kind, ui, hours, spark);
    waits until it answers."""
    return deps.servers(request).start(ref, config, user=identity_of(request).user)


@router.delete("/api/projects/{ref}/server", response_model=ServerStatus)
def server_stop(ref: str, request: Request, reason: str = "stopped by the user",
                user: str | None = UserQuery) -> dict[str, Any]:
    return deps.servers(request).stop(ref, reason, user=_whose(request, ref, user))


@router.post("/api/projects/{ref}/server/extend", response_model=ServerStatus)
def server_extend(ref: str, request: Request, body: ExtendBody | None = None,
                  user: str | None = UserQuery) -> dict[str, Any]:
    manager = deps.servers(request)
    hours = manager.settings.extend_hours if body is None or "hours" not in body.model_fields_set \
        else body.hours
    return manager.extend(ref, hours, user=_whose(request, ref, user))


@router.get("/api/projects/{ref}/servers", response_model=list[ServerHistoryEntry])
def server_history(ref: str, request: Request, user: str | None = UserQuery) -> list[dict[str, Any]]:
    """The user's servers of the project, newest first, with `log_kept`."""
    return deps.servers(request).history(ref, user=_whose(request, ref, user))


@router.get("/api/projects/{ref}/server/logs", response_model=LogChunk)
def server_logs(ref: str, request: Request, server_id: IdQuery = None, offset: OffsetQuery = 0,
                user: str | None = UserQuery) -> dict[str, Any]:
    return deps.servers(request).logs(ref, server_id, offset, user=_whose(request, ref, user))


@router.get("/api/projects/{ref}/server/logs/download")
def server_logs_download(ref: str, request: Request, server_id: IdQuery = None,
                         user: str | None = UserQuery) -> FileResponse:
    path = deps.servers(request).log_file(ref, server_id, user=_whose(request, ref, user))
    return FileResponse(path, media_type="text/plain; charset=utf-8", filename=f"jupyter-server-{path.stem}.log")


@router.get("/api/projects/{ref}/notebooks")
def notebooks(ref: str, request: Request) -> list[dict[str, Any]]:
    return list_notebooks(get_project_row(deps.store(request), ref)["path"])


@router.get("/api/projects/{ref}/notebooks/recent")
def notebooks_recent(ref: str, request: Request) -> list[dict[str, Any]]:
    return deps.servers(request).recent(ref, user=identity_of(request).user)


@router.post("/api/projects/{ref}/notebooks/open", response_model=OpenResult)
def notebooks_open(ref: str, body: OpenBody, request: Request) -> dict[str, Any]:
    return deps.servers(request).open_notebook(ref, body.notebook, user=identity_of(request).user)


@router.get("/api/projects/{ref}/notebooks/preview", response_class=HTMLResponse)
def notebooks_preview(ref: str, path: str, request: Request) -> HTMLResponse:
    """Sanitized read-only HTML of a notebook inside the project (no server needed)."""
    root = get_project_row(deps.store(request), ref)["path"]
    html = shared_previews().get(notebook_in_project(Path(root), path), root)
    return HTMLResponse(html, headers={"Content-Security-Policy": PREVIEW_CSP,
                                       "X-Content-Type-Options": "nosniff"})


@router.post("/api/kernels/launched", status_code=201)
def kernel_launched(body: LaunchBody, request: Request) -> dict[str, Any]:
    """Called by the kernel launcher: record which notebook ran with which configuration."""
    db = deps.store(request)
    return record_launch(db, _launch_project(db, request, body.project_path), runconfig=body.runconfig,
                         notebook=body.notebook, server_id=body.server_id, kernel_id=body.kernel_id,
                         server_config=body.server_config)


# -- (H3) a launch is recorded only for a project the caller may use -----------------------------------
def _launch_project(db: Any, request: Request, path: str) -> dict[str, Any]:  # noqa: ANN401 - a Store
    """The project of a launch: one the caller is a member of (anyone else gets exactly the unknown
    project's 404); an unregistered project folder is registered, and the caller owns it."""
    from labwork.auth.identity import current_user
    from labwork.auth.members import claim, role_of
    from labwork.errors import NotFound
    from labwork.project.registry import PROJECTS_HINTS
    user = current_user(request)
    try:
        row = get_project_row(db, path)
    except NotFound:
        row = get_project_row(db, path, register=True)
        claim(db, row["id"], user)  # a project nobody owned: the caller's, as a registration makes it
        return row
    if role_of(db, user, row["id"]) is None:
        raise NotFound(f"no registered project at '{path}'", hint="register it with 'labwork init DIR' or "
                       "by folder in the dashboard", hints=PROJECTS_HINTS)  # as for a folder that is none
    return row


class SparkUiBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spark_ui_url: str = Field(max_length=500)
    proxy_path: str | None = Field(None, max_length=200, pattern=r"^/spark/kernel-[A-Za-z0-9_-]{1,100}$",
                                   description="where the control plane proxies it (the driver's spark.ui.proxyBase)")


@router.post("/api/kernels/{kernel_id}/spark")
def kernel_spark(kernel_id: str, body: SparkUiBody, request: Request) -> dict[str, Any]:
    """Called by a PySpark kernel once `spark` is ready: remember its Spark UI address."""
    return record_spark_ui(deps.store(request), kernel_id, body.spark_ui_url, body.proxy_path,
                           user=current_user(request))
