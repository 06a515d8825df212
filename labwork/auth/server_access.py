"""Whose Jupyter server a request acts on: the one rule for the API and the dashboard.

A server belongs to a user and a project. Everyone acts on their own; a project's owners and the
administrators may also look at and stop (and extend) the other members' servers, by naming the
user (`?user=NAME`). Anyone else asking for another user's server gets the 404 an unknown server
gets, so nobody learns whose servers exist. Opening a server's UI (the proxy at /user/...) is its
user's alone (labwork/server/user_proxy.py).

Plain functions of the store and the caller, so the API routes and the dashboard's pages share them.
"""
from __future__ import annotations

from typing import Any

from labwork.auth.members import OWNER, role_of
from labwork.auth.users import UserRef, get_user
from labwork.errors import NotFound
from labwork.project.registry import get_project_row
from labwork.store.db import Store


def whose_server(db: Store, caller: UserRef, project_ref: int | str, name: str | None) -> UserRef:
    """The user whose server of the project a request means: the caller, or `name` when the
    caller may act on other members' servers (an owner of the project, an administrator)."""
    if not name or name == caller.name:
        return caller
    project = get_project_row(db, project_ref)
    if role_of(db, caller, project["id"]) != OWNER:
        raise _no_server(name, project)
    try:
        return get_user(db, name)
    except NotFound:
        raise _no_server(name, project) from None


def servers_seen_by(db: Store, caller: UserRef, servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The servers (`ServerSummary` dicts) the caller may see: all to an administrator; their own
    and, in projects they own, everyone's."""
    if caller.admin:
        return servers
    roles: dict[int, str | None] = {}
    out = []
    for s in servers:
        pid = (s.get("project") or {}).get("id")
        if pid is None:
            continue
        if pid not in roles:
            roles[pid] = role_of(db, caller, pid)
        if roles[pid] == OWNER or (roles[pid] is not None and s.get("user") == caller.name):
            out.append(s)
    return out


def _no_server(name: str, project: dict[str, Any]) -> NotFound:
    return NotFound(f"no Jupyter server of '{name[:64]}' in project '{project['name']}'", where="user",
                    hint="'labwork notebook list' lists the servers you may see",
                    hints={"dashboard": "the project's Jupyter page lists the servers you may see"})
