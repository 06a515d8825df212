"""Dashboard log-in sessions: the token is exchanged once for a random session id.

The browser's cookie holds `<id>.<signature>` (HMAC-SHA256 keyed by a key derived from the control
plane's token), never the token, so a cookie that leaks to another server on 127.0.0.1 (cookies are
not scoped by port) is not the master key: it expires server-side and log-out ends it. The table
`web_sessions` keeps only the SHA-256 of the id, its expiry and its user, so sessions survive a restart of
the control plane and a copy of the database lets nobody in. Lookups are cached in memory (one
control plane per store); log-out removes the row and the cache entry.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from labwork.auth.tables import WebSessionRow
from labwork.store.db import Store

COOKIE_PREFIX = "labwork_session"


def cookie_name(port: int | None) -> str:
    """`labwork_session_8790`: the port in the name keeps two control planes on 127.0.0.1 (whose
    cookies the browser does not tell apart) from overwriting each other's session."""
    return f"{COOKIE_PREFIX}_{port}" if port else COOKIE_PREFIX


def _derive(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), b"labwork:" + purpose, hashlib.sha256).digest()


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class WebSessions:
    """Create, check and end log-in sessions (one per control plane: `Services.web_sessions`)."""

    def __init__(self, store: Store, secret: str, lifetime_s: float) -> None:
        self.store = store
        self.lifetime = timedelta(seconds=lifetime_s)
        self._sign_key = _derive(secret, b"session-cookie")
        self._csrf_key = _derive(secret, b"form-csrf")
        self._cache: dict[str, tuple[datetime, int | None]] = {}  # id hash -> (expiry, user id)
        self._lock = threading.Lock()

    # -- the cookie's value ------------------------------------------------------------------------
    def _signature(self, session_id: str) -> str:
        return hmac.new(self._sign_key, session_id.encode(), hashlib.sha256).hexdigest()

    def unsign(self, value: str | None) -> str | None:
        """The session id in a cookie value if its signature is right (not yet whether it lives)."""
        if not value or len(value) > 200 or "." not in value:
            return None
        session_id, _, signature = value.rpartition(".")
        if not session_id or not hmac.compare_digest(signature, self._signature(session_id)):
            return None
        return session_id

    def csrf_token(self, session_id: str) -> str:
        """The forms' CSRF token for this session (a second layer behind the Origin check)."""
        return hmac.new(self._csrf_key, session_id.encode(), hashlib.sha256).hexdigest()

    # -- lifecycle ---------------------------------------------------------------------------------
    def create(self, user_id: int | None = None) -> tuple[str, str]:
        """A new session of `user_id`: (session id, cookie value). Expired rows are dropped on the way."""
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        expires = now + self.lifetime
        with self.store.session() as s:
            s.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < now))
            s.add(WebSessionRow(id_hash=_hash(session_id), created_at=now, expires_at=expires,
                                user_id=user_id))
        with self._lock:
            self._cache[_hash(session_id)] = (expires, user_id)
        return session_id, f"{session_id}.{self._signature(session_id)}"

    def known_alive(self, session_id: str) -> bool:
        """The in-memory answer only (no database): True when cached and not expired. Lets the
        request path skip a thread hop for the common case."""
        with self._lock:
            entry = self._cache.get(_hash(session_id))
        return entry is not None and entry[0] > datetime.now(UTC)

    def known_user(self, session_id: str) -> int | None:
        """The user of a cached, live session (None: not cached, expired or of nobody)."""
        with self._lock:
            entry = self._cache.get(_hash(session_id))
        return entry[1] if entry is not None and entry[0] > datetime.now(UTC) else None

    def user_of(self, session_id: str) -> int | None:
        """The user of a live session (looked up in the store when not cached), else None."""
        key = _hash(session_id)
        now = datetime.now(UTC)
        with self._lock:
            entry = self._cache.get(key)
        if entry is None:
            with self.store.session() as s:
                row = s.get(WebSessionRow, key)
                entry = (_aware(row.expires_at), row.user_id) if row is not None else None
            if entry is None:
                return None
            with self._lock:
                self._cache[key] = entry
        if entry[0] <= now:
            self.end(session_id)
            return None
        return entry[1]

    def alive(self, session_id: str) -> bool:
        """The session exists and has not expired."""
        key = _hash(session_id)
        if self.user_of(session_id) is not None:
            return True
        with self._lock:
            entry = self._cache.get(key)
        return entry is not None and entry[0] > datetime.now(UTC)

    def forget_user(self, user_id: int) -> None:
        """Drop the cached sessions of a user whose rows were deleted (removed, new password)."""
        with self._lock:
            for key in [k for k, (_e, uid) in self._cache.items() if uid == user_id]:
                self._cache.pop(key, None)

    def end(self, session_id: str) -> None:
        """Log-out: the session is gone server-side, whatever copies of the cookie exist."""
        key = _hash(session_id)
        with self._lock:
            self._cache.pop(key, None)
        with self.store.session() as s:
            s.execute(delete(WebSessionRow).where(WebSessionRow.id_hash == key))
