"""Who may see and change a project: its members' roles, as Hopsworks has them.

* owner — everything: compute targets, run configurations, members;
* member — start their own server, run notebooks, see the project's runs and Spark sessions.

Administrators see every project. Everyone else sees only the projects they are a member of; for
the others the answer is exactly what an unknown project gets (404), so a project's existence
does not leak. `labwork.server.project_access` applies these rules to every route in one place.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from labwork.auth.tables import ProjectMemberRow, UserRow
from labwork.auth.users import UserRef
from labwork.errors import Conflict, InvalidRequest, NotFound
from labwork.store.db import Store

OWNER, MEMBER = "owner", "member"
ROLES = (OWNER, MEMBER)


def role_of(store: Store, user: UserRef, project_id: int) -> str | None:
    """"owner", "member" or None; an administrator counts as an owner of every project."""
    if user.admin:
        return OWNER
    with store.session() as s:
        row = s.get(ProjectMemberRow, (project_id, user.id))
        return row.role if row is not None else None


def visible_ids(store: Store, user: UserRef) -> set[int] | None:
    """The ids of the projects `user` may see; None: all of them (an administrator)."""
    if user.admin:
        return None
    with store.session() as s:
        return set(s.scalars(select(ProjectMemberRow.project_id).where(ProjectMemberRow.user_id == user.id)))


def only_visible(store: Store, user: UserRef | None, items: list[dict[str, Any]],
                 key: str = "id") -> list[dict[str, Any]]:
    """`items` (dicts with a project id under `key`) that `user` may see."""
    ids = visible_ids(store, user) if user is not None else set()
    return items if ids is None else [i for i in items if i.get(key) in ids]


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidRequest(f"'{str(role)[:40]}' is not a role: owner or member", where="role")
    return role


def list_members(store: Store, project_id: int) -> list[dict[str, Any]]:
    with store.session() as s:
        rows = s.execute(select(ProjectMemberRow.role, UserRow.name, UserRow.admin)
                         .join(UserRow, UserRow.id == ProjectMemberRow.user_id)
                         .where(ProjectMemberRow.project_id == project_id).order_by(UserRow.name))
        return [{"user": name, "role": role, "admin": bool(admin)} for role, name, admin in rows]


def set_member(store: Store, project_id: int, user_name: str, role: str = MEMBER) -> dict[str, Any]:
    """Add `user_name` to the project with `role` (or change their role)."""
    check_role(role)
    with store.session() as s:
        user = s.scalar(select(UserRow).where(UserRow.name == str(user_name)[:200]))
        if user is None:
            raise NotFound(f"no user '{str(user_name)[:80]}'", where="user",
                           hint="add them first: 'labwork user add NAME'")
        row = s.get(ProjectMemberRow, (project_id, user.id))
        if row is None:
            s.add(ProjectMemberRow(project_id=project_id, user_id=user.id, role=role))
        else:
            if row.role == OWNER and role != OWNER:
                _keep_an_owner(s, project_id, user.id)
            row.role = role
        return {"user": user.name, "role": role, "admin": bool(user.admin)}


def remove_member(store: Store, project_id: int, user_name: str) -> dict[str, Any]:
    with store.session() as s:
        user = s.scalar(select(UserRow).where(UserRow.name == str(user_name)[:200]))
        row = s.get(ProjectMemberRow, (project_id, user.id)) if user is not None else None
        if row is None:
            raise NotFound(f"'{str(user_name)[:80]}' is not a member of this project", where="user")
        if row.role == OWNER:
            _keep_an_owner(s, project_id, user.id)
        s.delete(row)
        return {"user": user.name, "role": row.role}


def _keep_an_owner(s, project_id: int, leaving: int) -> None:  # noqa: ANN001 - a Session
    others = s.scalars(select(ProjectMemberRow.user_id).where(
        ProjectMemberRow.project_id == project_id, ProjectMemberRow.role == OWNER,
        ProjectMemberRow.user_id != leaving)).first()
    if others is None:
        raise Conflict("a project keeps at least one owner", where="user",
                       hint="make someone else an owner first (--role owner)",
                       hints={"dashboard": "add someone else with the role owner first"})


def claim(store: Store, project_id: int, user: UserRef) -> None:
    """Who registers a project nobody owns becomes its owner."""
    with store.session() as s:
        if s.scalars(select(ProjectMemberRow.user_id).where(ProjectMemberRow.project_id == project_id)).first() is None:
            s.add(ProjectMemberRow(project_id=project_id, user_id=user.id, role=OWNER))


def register_owned(store: Store, user: UserRef, folder: str) -> dict[str, Any]:
    """Register a project folder for `user`: a new project is theirs (owner); one registered
    already is only answered to its members (anyone else gets 404, as for an unknown project)."""
    from labwork.project.registry import register_project
    with store.session() as s:
        known = set(s.scalars(select(ProjectMemberRow.project_id)))
    row = register_project(store, folder)
    if row["id"] not in known:
        claim(store, row["id"], user)
    elif role_of(store, user, row["id"]) is None:
        raise NotFound(f"no project '{folder}' you may register", where="path",
                       hint="it is registered already; ask one of its owners to add you")
    return row


NO_PROJECT = "\x00"  # a folder no run has: the filter of a caller who may see no project


def visible_folders(store: Store, user: UserRef) -> list[str] | None:
    """The folders of the projects `user` may see (None: every project, an administrator)."""
    from labwork.store.tables import ProjectRow
    if user.admin:
        return None
    with store.session() as s:
        return list(s.scalars(select(ProjectRow.path).join(
            ProjectMemberRow, ProjectMemberRow.project_id == ProjectRow.id).where(ProjectMemberRow.user_id == user.id)))


def runs_filter(store: Store, user: UserRef | None, project: str | None) -> str | list[str] | None:
    """The `project` filter of a run list for `user`: an administrator's as asked; anyone else's
    narrowed to the folders of their projects (a project they may not see matches nothing)."""
    if user is not None and user.admin:
        return project
    folders = visible_folders(store, user) if user is not None else []
    if project:
        from labwork.store.tables import ProjectRow
        with store.session() as s:
            named = set(s.scalars(select(ProjectRow.path).where(ProjectRow.name == project)))
        chosen = [f for f in folders or [] if f == project or f in named]
        return chosen or [NO_PROJECT]
    return folders or [NO_PROJECT]


def owned_folders(store: Store, user: UserRef) -> list[str]:
    """The folders of the projects `user` is an owner of."""
    from labwork.store.tables import ProjectRow
    with store.session() as s:
        return list(s.scalars(select(ProjectRow.path).join(
            ProjectMemberRow, ProjectMemberRow.project_id == ProjectRow.id).where(
            ProjectMemberRow.user_id == user.id, ProjectMemberRow.role == OWNER)))


def may_tag_spark(store: Store, user: UserRef | None, conf: dict[str, Any]) -> bool:
    """Whether `user` may create a Spark session or batch with this conf: one tagged with a project
    (`spark.labwork.project`, its folder) only as a member of it (or an administrator)."""
    from labwork.spark_properties import PROJECT_TAG
    if user is None:
        return False
    tag = str(conf.get(PROJECT_TAG) or "")
    return user.admin or not tag or tag in (visible_folders(store, user) or [])


def sees_spark(store: Store, user: UserRef | None, conf: dict[str, Any],
               owner: str | None = None, proxy_user: str | None = None) -> bool:
    """Whether `user` may see (and control) a Spark session or batch: administrators all; a user
    the ones they own or run as (`owner`, `proxyUser`); a project's owners every one tagged with
    the project (`spark.labwork.project`, its folder). An untagged session of someone else, or one
    with no owner, is visible to administrators only."""
    from labwork.spark_properties import PROJECT_TAG
    if user is None:
        return False
    if user.admin:
        return True
    if user.name in (owner, proxy_user):
        return True
    tag = str(conf.get(PROJECT_TAG) or "")
    return bool(tag) and tag in owned_folders(store, user)
