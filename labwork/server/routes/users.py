"""/api/users, /api/me, /api/tokens and /api/projects/{ref}/members: users, personal tokens and
project membership (the CLI's `labwork user`, `token` and `project members`)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from labwork.auth.identity import current_user, require_token
from labwork.auth.members import MEMBER, list_members, remove_member, set_member
from labwork.auth.users import UserRef
from labwork.project.registry import get_project_row
from labwork.server import deps

router = APIRouter(tags=["users"], dependencies=[Depends(require_token)])
Caller = Annotated[UserRef, Depends(current_user)]
UserName = Annotated[str, Path(max_length=200)]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    password: str | None = Field(None, max_length=1024)
    admin: bool = False


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(max_length=1024)


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str | None = Field(None, max_length=200)
    name: str = Field("", max_length=100)
    expires: str | None = Field(None, max_length=20)


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(max_length=200)
    role: str = Field(MEMBER, max_length=20)


def _accounts(request: Request):  # noqa: ANN202 - Accounts
    return deps.services(request).accounts


@router.get("/api/me")
def me(caller: Caller) -> dict[str, Any]:
    return {"id": caller.id, "name": caller.name, "admin": caller.admin}


@router.get("/api/users")
def users(request: Request, caller: Caller) -> list[dict[str, Any]]:
    return _accounts(request).list_users(caller)


@router.post("/api/users", status_code=201)
def user_add(body: NewUser, request: Request, caller: Caller) -> dict[str, Any]:
    return _accounts(request).add_user(caller, body.name, password=body.password, admin=body.admin)


@router.delete("/api/users/{name}")
def user_remove(name: UserName, request: Request, caller: Caller) -> dict[str, Any]:
    return _accounts(request).remove_user(caller, name)


@router.put("/api/users/{name}/password")
def user_passwd(name: UserName, body: NewPassword, request: Request, caller: Caller) -> dict[str, Any]:
    return _accounts(request).set_password(caller, name, body.password)


@router.get("/api/tokens")
def tokens(request: Request, caller: Caller, all: bool = False) -> list[dict[str, Any]]:
    """The caller's tokens (`?all=true`: everyone's, for admins); never the tokens themselves."""
    return _accounts(request).list_tokens(caller, everyone=all)


@router.post("/api/tokens", status_code=201)
def token_create(body: NewToken, request: Request, caller: Caller) -> dict[str, Any]:
    """A new personal token: the answer's `token` is the only time it is shown."""
    return _accounts(request).create_token(caller, user=body.user, name=body.name, expires=body.expires)


@router.delete("/api/tokens/{token_id}")
def token_revoke(token_id: Annotated[int, Path(ge=1, le=2**62)], request: Request, caller: Caller) -> dict[str, Any]:
    return _accounts(request).revoke_token(caller, token_id)


# -- members (the project's access was checked by labwork.server.project_access) ---------------------

@router.get("/api/projects/{ref}/members")
def members(ref: str, request: Request) -> list[dict[str, Any]]:
    return list_members(deps.store(request), get_project_row(deps.store(request), ref)["id"])


@router.post("/api/projects/{ref}/members", status_code=201)
def member_add(ref: str, body: Member, request: Request) -> dict[str, Any]:
    """Add a user to the project (or change their role): owners only."""
    db = deps.store(request)
    return set_member(db, get_project_row(db, ref)["id"], body.user, body.role)


@router.delete("/api/projects/{ref}/members/{user}")
def member_remove(ref: str, user: UserName, request: Request) -> dict[str, Any]:
    db = deps.store(request)
    return remove_member(db, get_project_row(db, ref)["id"], user)
