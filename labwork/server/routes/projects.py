"""/api/projects: registration and project files as the dashboard and CLI see them."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from labwork.auth.identity import current_user, require_token
from labwork.auth.members import only_visible, register_owned
from labwork.auth.users import UserRef
from labwork.project.describe import describe_project
from labwork.project.registry import get_project_row, list_projects
from labwork.server import deps

router = APIRouter(prefix="/api/projects", tags=["projects"], dependencies=[Depends(require_token)])


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str


@router.get("")
def projects(request: Request, caller: Annotated[UserRef, Depends(current_user)]) -> list[dict[str, Any]]:
    """The projects the caller is a member of (an administrator: all)."""
    return only_visible(deps.store(request), caller, list_projects(deps.store(request)))


@router.post("", status_code=201)
def register(body: RegisterBody, request: Request, caller: Annotated[UserRef, Depends(current_user)]) -> dict[str, Any]:
    """Register a project folder; who registers it first becomes its owner."""
    return register_owned(deps.store(request), caller, body.path)


@router.get("/{ref}")
def project(ref: str, request: Request) -> dict[str, Any]:
    row = get_project_row(deps.store(request), ref)
    return row | describe_project(row["path"])

