"""Personal API tokens: made once, shown once, stored only as a keyed hash.

A token is `lw_` + 32 random bytes (URL-safe base64): 256 bits that nobody can guess, so a fast
keyed hash is the right way to keep it (HMAC-SHA256 with a key of the installation,
LABWORK_HOME/token_key): a lookup is one index probe per request, and a copy of the database
without the key file cannot even be tested offline. A slow password hash (argon2) exists to make
guessing *low-entropy* secrets expensive; for a 256-bit random token it would only slow down every
API call. Revoking deletes the row: the next request with that token is refused.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from labwork.auth.tables import ApiTokenRow, UserRow
from labwork.auth.users import UserRef, ref_of
from labwork.errors import InvalidRequest, NotFound
from labwork.store.db import Store

PREFIX = "lw_"
_DURATION = re.compile(r"^(\d{1,5})([hdw])$")
_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(text: str | None) -> timedelta | None:
    """`30d`, `12h`, `2w`, or `never`/empty (no expiry)."""
    if text is None or str(text).strip().lower() in ("", "never", "none"):
        return None
    m = _DURATION.match(str(text).strip().lower())
    if not m or int(m.group(1)) == 0:
        raise InvalidRequest(f"'{str(text)[:40]}' is not a lifetime: write e.g. 30d, 12h, 2w or never",
                             where="expires")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def token_dict(row: ApiTokenRow, user: str) -> dict[str, Any]:
    expires = _aware(row.expires_at)
    return {"id": row.id, "user": user, "name": row.name, "prefix": row.prefix,
            "created_at": _aware(row.created_at).isoformat(),
            "expires_at": expires.isoformat() if expires else None,
            "expired": bool(expires and expires <= datetime.now(UTC))}


class ApiTokens:
    """The personal tokens of one store, hashed with the installation's key."""

    def __init__(self, store: Store, key: str) -> None:
        self.store = store
        self._key = hmac.new(key.encode(), b"labwork:api-token", hashlib.sha256).digest()

    def digest(self, token: str) -> str:
        return hmac.new(self._key, token.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()

    def create(self, user: UserRef, *, name: str = "", expires: str | None = None) -> dict[str, Any]:
        """A new token for `user`: the answer holds it (`token`), the store only its hash."""
        name = (name or "token").strip()
        if len(name) > 100 or any(ord(c) < 32 for c in name):
            raise InvalidRequest("a token's name is up to 100 printable characters", where="name")
        lifetime = parse_expiry(expires)
        token = PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.store.session() as s:
            row = ApiTokenRow(user_id=user.id, name=name, prefix=token[:10], hash=self.digest(token),
                              created_at=now, expires_at=now + lifetime if lifetime else None)
            s.add(row)
            s.flush()
            return token_dict(row, user.name) | {"token": token}

    def user_of(self, token: str) -> UserRef | None:
        """The user a token stands for, None when unknown, revoked or expired."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        with self.store.session() as s:
            found = s.execute(select(ApiTokenRow, UserRow).join(UserRow, UserRow.id == ApiTokenRow.user_id)
                              .where(ApiTokenRow.hash == self.digest(token))).first()
            if found is None:
                return None
            row, user = found
            expires = _aware(row.expires_at)
            if expires is not None and expires <= datetime.now(UTC):
                return None
            return ref_of(user)

    def list(self, user: UserRef | None) -> list[dict[str, Any]]:
        """`user`'s tokens (every user's with None)."""
        with self.store.session() as s:
            q = select(ApiTokenRow, UserRow.name).join(UserRow, UserRow.id == ApiTokenRow.user_id)
            if user is not None:
                q = q.where(ApiTokenRow.user_id == user.id)
            return [token_dict(row, name) for row, name in s.execute(q.order_by(ApiTokenRow.id))]

    def revoke(self, token_id: int, user: UserRef) -> dict[str, Any]:
        """Delete a token of `user` (an admin's: anyone's); it stops working at once."""
        with self.store.session() as s:
            found = s.execute(select(ApiTokenRow, UserRow.name).join(UserRow, UserRow.id == ApiTokenRow.user_id)
                              .where(ApiTokenRow.id == token_id)).first()
            if found is None or (not user.admin and found[0].user_id != user.id):
                raise NotFound(f"no token {token_id}", where="token", hint="'labwork token list' lists yours")
            out = token_dict(found[0], found[1])
            s.delete(found[0])
            return out
