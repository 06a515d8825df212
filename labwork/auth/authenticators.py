"""How a person proves who they are: a small contract in JupyterHub's style, two built-ins.

An `Authenticator` has two optional ways in:

* `authenticate(name, password)` — a log-in form's user name and password: the user, or None
  (wrong or unknown; the caller counts failures and never says which of the two was wrong);
* `pre_authenticated(client, headers)` — a request that arrives already authenticated by
  something in front of labwork (a reverse proxy doing SSO): the user, or None.

Either returns a `UserRef` of a user that exists in labwork's store: an authenticator decides
*who* someone is, labwork's own tables decide what they may do (admin flag, project roles).

Built-ins (`[auth] authenticator`): `LocalPasswords` (argon2 hashes in the store) and
`TrustedHeader` (the `proxy_header`, `X-Forwarded-User` by default, believed only from
`trusted_proxies`; from any other address it is ignored and logged, so a client cannot name
itself). `TrustedHeader` keeps password log-in too (for admins when the proxy is down).
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from labwork.auth.users import UserRef, get_user, verify_password
from labwork.errors import NotFound
from labwork.settings import AuthSettings
from labwork.store.db import Store

log = logging.getLogger("labwork.auth")


class Authenticator(Protocol):
    def authenticate(self, name: str, password: str) -> UserRef | None: ...

    def pre_authenticated(self, client: str | None, headers: Mapping[str, str]) -> UserRef | None: ...


class LocalPasswords:
    """User names and passwords kept by labwork (`labwork user add`, `user passwd`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def authenticate(self, name: str, password: str) -> UserRef | None:
        return verify_password(self.store, name, password) if name and password else None

    def pre_authenticated(self, client: str | None, headers: Mapping[str, str]) -> UserRef | None:
        return None


class OncePer:
    """Whether to log now: at most once per `interval_s` per key (a client address), so a client
    that sends the header with every request cannot flood the log. Keeps at most `max_keys`."""

    def __init__(self, interval_s: float = 60.0, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.interval_s, self.clock, self.max_keys = interval_s, clock, max_keys
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                return False
            if len(self._last) >= self.max_keys:
                self._last = {k: t for k, t in self._last.items() if now - t < self.interval_s}
            self._last[key] = now
            return True


class TrustedHeader(LocalPasswords):
    """The user a trusted reverse proxy names in a header (Grafana's auth proxy, JupyterHub's
    RemoteUser authenticators). The user must exist in labwork (`labwork user add NAME`)."""

    def __init__(self, store: Store, header: str, proxies: list[str]) -> None:
        super().__init__(store)
        self.header = header.lower()
        self.networks = [ipaddress.ip_network(p, strict=False) for p in proxies]
        self.warn_untrusted = OncePer(60.0)  # the ignored-header warning: once a minute per address

    def trusted(self, client: str | None) -> bool:
        try:
            address = ipaddress.ip_address(client or "")
        except ValueError:
            return False
        return any(address in net for net in self.networks)

    def pre_authenticated(self, client: str | None, headers: Mapping[str, str]) -> UserRef | None:
        name = headers.get(self.header)
        if not name:
            return None
        if not self.trusted(client):
            if self.warn_untrusted(str(client)):
                log.warning("ignored the %s header from %s: not a trusted proxy ([auth] trusted_proxies; "
                            "logged at most once a minute per address)", self.header, client)
            return None
        try:
            return get_user(self.store, name.strip())
        except NotFound:
            log.warning("the proxy at %s named an unknown user (%s header): not let in", client, self.header)
            return None


def make_authenticator(settings: AuthSettings, store: Store) -> Authenticator:
    if settings.authenticator == "header":
        return TrustedHeader(store, settings.proxy_header, settings.trusted_proxies)
    return LocalPasswords(store)
