"""/api/projects: registration and project files as the dashboard and CLI see them."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from labwork.auth.identity import require_token
from labwork.project.describe import describe_project
from labwork.project.registry import get_project_row, list_projects, register_project
from labwork.server import deps

router = APIRouter(prefix="/api/projects", tags=["projects"], dependencies=[Depends(require_token)])


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str


@router.get("")
def projects(request: Request) -> list[dict[str, Any]]:
    return list_projects(deps.store(request))


@router.post("", status_code=201)
def register(body: RegisterBody, request: Request) -> dict[str, Any]:
    return register_project(deps.store(request), body.path)


@router.get("/{ref}")
def project(ref: str, request: Request) -> dict[str, Any]:
    row = get_project_row(deps.store(request), ref)
    return row | describe_project(row["path"])

