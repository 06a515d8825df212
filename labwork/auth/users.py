"""Users: who they are (`UserRef`), adding, listing, removing, passwords (argon2id via argon2-cffi).

A password is hashed with argon2id (`argon2.PasswordHasher`, its defaults: memory-hard, salted,
parameters kept in the hash so they can be raised later and old hashes rehashed at the next
log-in). Names are short, lower-case-friendly identifiers: they appear in URLs later
(`/user/<name>/...`), so the rule is strict from the start.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from labwork.auth.tables import ApiTokenRow, ProjectMemberRow, UserRow, WebSessionRow
from labwork.errors import Conflict, InvalidRequest, NotFound
from labwork.store.db import Store

NAME_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,63}$")
MIN_PASSWORD = 8
FIRST_ADMIN = "admin"


@dataclass(frozen=True)
class UserRef:
    """The user a request acts as: what `Identity.user` carries."""

    id: int
    name: str
    admin: bool = False


def _hasher():
    from argon2 import PasswordHasher
    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidRequest(f"'{str(name)[:80]}' is not a user name: use 1-64 of a-z, 0-9, '_', '.', '-', "
                             "starting with a letter or '_'", where="name")
    return name


def check_password(password: str | None) -> str:
    if not password or len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"a password needs at least {MIN_PASSWORD} characters", where="password")
    if len(password) > 1024:
        raise InvalidRequest("a password may have at most 1024 characters", where="password")
    return password


def user_dict(row: UserRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "admin": bool(row.admin),
            "password": row.password_hash is not None,
            "created_at": row.created_at.isoformat() if row.created_at else None}


def ref_of(row: UserRow) -> UserRef:
    return UserRef(row.id, row.name, bool(row.admin))


def add_user(store: Store, name: str, *, password: str | None = None, admin: bool = False) -> dict[str, Any]:
    check_name(name)
    if password is not None:
        check_password(password)
    with store.session() as s:
        if s.scalar(select(UserRow).where(UserRow.name == name)) is not None:
            raise Conflict(f"user '{name}' exists", where="name",
                           hint=f"change the password with 'labwork user passwd {name}'")
    hashed = hash_password(password) if password is not None else None
    try:
        with store.session() as s:
            row = UserRow(name=name, password_hash=hashed, admin=admin, created_at=datetime.now(UTC))
            s.add(row)
            s.flush()
            return user_dict(row)
    except IntegrityError as exc:  # added meanwhile
        raise Conflict(f"user '{name}' exists", where="name") from exc


def list_users(store: Store) -> list[dict[str, Any]]:
    with store.session() as s:
        return [user_dict(r) for r in s.scalars(select(UserRow).order_by(UserRow.name))]


def _row(s, name: str) -> UserRow:  # noqa: ANN001 - a Session
    row = s.scalar(select(UserRow).where(UserRow.name == str(name)[:200]))
    if row is None:
        raise NotFound(f"no user '{str(name)[:80]}'", where="user", hint="'labwork user list' lists them")
    return row


def get_user(store: Store, name: str) -> UserRef:
    with store.session() as s:
        return ref_of(_row(s, name))


def user_by_id(store: Store, user_id: int) -> UserRef | None:
    with store.session() as s:
        row = s.get(UserRow, user_id)
        return ref_of(row) if row is not None else None


def remove_user(store: Store, name: str) -> dict[str, Any]:
    """Remove a user with their tokens, sessions and memberships (the last admin stays)."""
    with store.session() as s:
        row = _row(s, name)
        if row.admin and s.scalar(select(func.count()).select_from(UserRow).where(UserRow.admin)) <= 1:
            raise Conflict(f"'{name}' is the last administrator", where="user",
                           hint="make another administrator first ('labwork user add NAME --admin')",
                           hints={"dashboard": "make another administrator first"})
        out = user_dict(row)
        s.execute(delete(ApiTokenRow).where(ApiTokenRow.user_id == row.id))
        s.execute(delete(WebSessionRow).where(WebSessionRow.user_id == row.id))
        s.execute(delete(ProjectMemberRow).where(ProjectMemberRow.user_id == row.id))
        s.delete(row)
        return out


def set_password(store: Store, name: str, password: str) -> dict[str, Any]:
    """A new password; the user's log-in sessions end (tokens stay: revoke them on their own)."""
    check_password(password)
    get_user(store, name)  # an unknown user is said before the (deliberately slow) hash
    hashed = hash_password(password)
    with store.session() as s:
        row = _row(s, name)
        row.password_hash = hashed
        s.execute(delete(WebSessionRow).where(WebSessionRow.user_id == row.id))
        return user_dict(row)


def verify_password(store: Store, name: str, password: str) -> UserRef | None:
    """The user when `password` is theirs; None otherwise (unknown user or no password set). An
    unknown name costs a hash too, so timing does not tell names apart."""
    from argon2.exceptions import InvalidHashError, VerificationError
    hasher = _hasher()
    with store.session() as s:
        row = s.scalar(select(UserRow).where(UserRow.name == str(name)[:200]))
        stored = row.password_hash if row is not None else None
        if stored is None:
            hasher.hash(password or "-")  # same cost as a real check
            return None
        try:
            hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if hasher.check_needs_rehash(stored):
            row.password_hash = hasher.hash(password)
        return ref_of(row)


def first_admin(store: Store) -> UserRef | None:
    """The administrator LABWORK_HOME/token authenticates as: the oldest one."""
    with store.session() as s:
        row = s.scalar(select(UserRow).where(UserRow.admin).order_by(UserRow.id).limit(1))
        return ref_of(row) if row is not None else None


def ensure_admin(store: Store) -> UserRef | None:
    """On an empty store, make the first administrator (no password: the token file logs it in);
    returns it when it was made now, None when users existed."""
    with store.session() as s:
        if s.scalar(select(func.count()).select_from(UserRow)):
            return None
        row = UserRow(name=FIRST_ADMIN, password_hash=None, admin=True, created_at=datetime.now(UTC))
        s.add(row)
        s.flush()
        return ref_of(row)
