"""Dashboard log-in sessions: the token is exchanged once for a random session id.

The browser's cookie holds `<id>.<signature>` (HMAC-SHA256 keyed by a key derived from the control
plane's token), never the token, so a cookie that leaks to another server on 127.0.0.1 (cookies are
not scoped by port) is not the master key: it expires server-side and log-out ends it. The table
`web_sessions` keeps only the SHA-256 of the id and its expiry, so sessions survive a restart of
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
        self._cache: dict[str, datetime] = {}
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
    def create(self) -> tuple[str, str]:
        """A new session: (session id, cookie value). Expired rows are dropped on the way."""
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        expires = now + self.lifetime
        with self.store.session() as s:
            s.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < now))
            s.add(WebSessionRow(id_hash=_hash(session_id), created_at=now, expires_at=expires))
        with self._lock:
            self._cache[_hash(session_id)] = expires
        return session_id, f"{session_id}.{self._signature(session_id)}"

    def known_alive(self, session_id: str) -> bool:
        """The in-memory answer only (no database): True when cached and not expired. Lets the
        request path skip a thread hop for the common case."""
        with self._lock:
            expires = self._cache.get(_hash(session_id))
        return expires is not None and expires > datetime.now(UTC)

    def alive(self, session_id: str) -> bool:
        """The session exists and has not expired."""
        key = _hash(session_id)
        now = datetime.now(UTC)
        with self._lock:
            expires = self._cache.get(key)
        if expires is None:
            with self.store.session() as s:
                row = s.get(WebSessionRow, key)
                expires = _aware(row.expires_at) if row is not None else None
            if expires is None:
                return False
            with self._lock:
                self._cache[key] = expires
        if expires <= now:
            self.end(session_id)
            return False
        return True

    def end(self, session_id: str) -> None:
        """Log-out: the session is gone server-side, whatever copies of the cookie exist."""
        key = _hash(session_id)
        with self._lock:
            self._cache.pop(key, None)
        with self.store.session() as s:
            s.execute(delete(WebSessionRow).where(WebSessionRow.id_hash == key))
