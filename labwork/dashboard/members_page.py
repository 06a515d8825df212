"""The project's Members page: who may use the project and their roles; owners add and remove
members (the rule is `labwork.server.project_access`, which already answered a non-member 404 and
a member's POST 403)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from labwork.auth.identity import identity_of
from labwork.auth.members import MEMBER, OWNER, list_members, remove_member, role_of, set_member
from labwork.dashboard.auth import form_auth, page_auth
from labwork.dashboard.web import FORM_ERRORS, dashboard_of, error_text, fails_as, get_project, render

router = APIRouter()
NOTICES = {"added": "Member added.", "removed": "Member removed."}


def _page(request: Request, project_id: int, *, status: int = 200, error: str | None = None,
          notice: str | None = None, form: dict[str, Any] | None = None) -> Response:
    store = dashboard_of(request).store
    project = get_project(request, project_id)
    user = identity_of(request).user
    role = role_of(store, user, project["id"]) if user else None
    return render(request, "members.html", status_code=status, error=error, notice=notice,
                  project=project, section="members", members=list_members(store, project["id"]),
                  can_edit=role == OWNER, roles=(MEMBER, OWNER), form=form or {})


@router.get("/projects/{project_id:int}/members")
def members(request: Request, project_id: int, ok: str | None = None,
            _auth: None = Depends(page_auth)) -> Response:
    return _page(request, project_id, notice=NOTICES.get(ok or ""))


@router.post("/projects/{project_id:int}/members/add", dependencies=[Depends(fails_as("Not added"))])
def add(request: Request, project_id: int, form: dict = Depends(form_auth)) -> Response:
    user = str(form.get("user") or "").strip()
    role = str(form.get("role") or MEMBER)
    try:
        set_member(dashboard_of(request).store, project_id, user, role)
    except FORM_ERRORS as exc:
        return _page(request, project_id, status=exc.http_status, error=f"Not added: {error_text(exc)}",
                     form=dict(form))
    return RedirectResponse(f"/projects/{project_id}/members?ok=added", status_code=303)


@router.post("/projects/{project_id:int}/members/remove", dependencies=[Depends(fails_as("Not removed"))])
def remove(request: Request, project_id: int, form: dict = Depends(form_auth)) -> Response:
    try:
        remove_member(dashboard_of(request).store, project_id, str(form.get("user") or ""))
    except FORM_ERRORS as exc:
        return _page(request, project_id, status=exc.http_status, error=f"Not removed: {error_text(exc)}")
    return RedirectResponse(f"/projects/{project_id}/members?ok=removed", status_code=303)
