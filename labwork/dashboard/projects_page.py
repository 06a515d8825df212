"""The projects page: every registered project with its server state and time left; add by folder."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from labwork.auth.identity import identity_of
from labwork.auth.members import only_visible, register_owned
from labwork.dashboard.auth import form_auth, page_auth
from labwork.dashboard.web import FORM_ERRORS, dashboard_of, error_text, fails_as, render

router = APIRouter()

NOTICES = {"added": "Project added."}


def projects_view(request: Request) -> list[dict[str, Any]]:
    from labwork.project.registry import list_projects
    dash = dashboard_of(request)
    projects = only_visible(dash.store, identity_of(request).user, list_projects(dash.store))
    me = identity_of(request).user
    active: dict[int, dict[str, Any]] = {}  # the caller's own running server of each project
    for server in dash.servers.list(include_stopped=False):
        pid = (server.get("project") or {}).get("id")
        if pid is not None and pid not in active and me is not None and server.get("user") == me.name:
            active[pid] = server
    for p in projects:
        p["server"] = active.get(p["id"])
    return projects


def _page(request: Request, *, status: int = 200, error: str | None = None, folder: str = "",
          notice: str | None = None) -> Response:
    return render(request, "projects.html", status_code=status, projects=projects_view(request), error=error,
                  folder=folder, notice=notice, section="projects")


@router.get("/")
async def projects(request: Request, ok: str | None = None, _auth: None = Depends(page_auth)) -> Response:
    return await run_in_threadpool(_page, request, notice=NOTICES.get(ok or ""))


@router.post("/projects", dependencies=[Depends(fails_as("Not added"))])
def add_project(request: Request, form: dict = Depends(form_auth)) -> Response:
    folder = str(form.get("folder") or "").strip()
    if not folder:
        return _page(request, status=400, error="Give the folder of a labwork project (it holds labwork.toml).")
    from pathlib import Path
    if not Path(folder).expanduser().is_absolute():
        return _page(request, status=400, folder=folder,
                     error=f"Not added: give the folder's absolute path (got {folder!r}).")
    try:
        row = register_owned(dashboard_of(request).store, identity_of(request).user,
                             str(Path(folder).expanduser()))
    except FORM_ERRORS as exc:  # the form again, the folder kept; other errors: the boundary
        return _page(request, status=exc.http_status, error=f"Not added: {error_text(exc)}", folder=folder)
    return RedirectResponse(f"/projects/{row['id']}/jupyter?ok=added", status_code=303)


@router.get("/projects/{project_id:int}")
def project_home(project_id: int, _auth: None = Depends(page_auth)) -> Response:
    return RedirectResponse(f"/projects/{project_id}/jupyter", status_code=303)
