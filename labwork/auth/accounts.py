"""The control plane's one view of users and their credentials (`Services.accounts`): which user a
bearer token, a session or a trusted proxy header stands for, and the user and token operations
the API offers (so the caches here stay right: a removed user, a new password or a revoked token
takes effect on the next request).

LABWORK_HOME/token, the single token of installations from before users, authenticates as the
first administrator: nobody's set-up breaks on upgrade, and the CLI (which reads that file) acts
as an administrator.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labwork.access import same_secret
from labwork.auth import users as users_lib
from labwork.auth.api_tokens import ApiTokens
from labwork.auth.authenticators import Authenticator, make_authenticator
from labwork.auth.limits import LoginLimiter
from labwork.auth.sessions import WebSessions
from labwork.auth.token import load_or_create_token
from labwork.auth.users import UserRef
from labwork.errors import Forbidden
from labwork.settings import AuthSettings
from labwork.store.db import Store


class Accounts:
    def __init__(self, store: Store, *, token: str, key_file: Path, settings: AuthSettings,
                 web_sessions: WebSessions) -> None:
        self.store = store
        self.token = token
        self.web_sessions = web_sessions
        self.tokens = ApiTokens(store, load_or_create_token(key_file))
        self.authenticator: Authenticator = make_authenticator(settings, store)
        # the trusted proxy's header, when that authenticator is on (AccessGuard looks for it)
        self.proxy_header = settings.proxy_header.lower() if settings.authenticator == "header" else None
        self.limiter = LoginLimiter(settings.login_attempts, settings.login_window_s)
        self._users: dict[int, UserRef | None] = {}
        self._admin: UserRef | None = None
        self._lock = threading.Lock()

    # -- who a credential stands for (called by AccessGuard, off the event loop) -----------------------
    def token_admin(self) -> UserRef | None:
        with self._lock:
            if self._admin is not None:
                return self._admin
        admin = users_lib.first_admin(self.store)
        with self._lock:
            self._admin = admin
        return admin

    def by_secret(self, secret: str | None) -> UserRef | None:
        """The user of a bearer token (or Basic password): the installation's token (the first
        admin) or a personal token; None when it is neither."""
        if not secret:
            return None
        if same_secret(secret, self.token):
            return self.token_admin()
        return self.tokens.user_of(secret)

    def known(self, user_id: int) -> UserRef | None | bool:
        """A cached user (False when not cached)."""
        with self._lock:
            return self._users.get(user_id, False)

    def by_id(self, user_id: int) -> UserRef | None:
        cached = self.known(user_id)
        if cached is not False:
            return cached  # type: ignore[return-value]
        user = users_lib.user_by_id(self.store, user_id)
        with self._lock:
            self._users[user_id] = user
        return user

    def pre_authenticated(self, client: str | None, headers: Mapping[str, str]) -> UserRef | None:
        return self.authenticator.pre_authenticated(client, headers)

    def log_in(self, name: str, password: str, address: str | None) -> UserRef | None:
        """A log-in form's check, rate-limited per name and per address (raises TooManyRequests)."""
        self.limiter.check(name, address)
        user = self.authenticator.authenticate(name, password)
        if user is None:
            self.limiter.failed(name, address)
        else:
            self.limiter.succeeded(name)
        return user

    def log_in_token(self, secret: str, address: str | None) -> UserRef | None:
        """The dashboard's token log-in: the installation's token or a personal one, rate-limited
        per address."""
        self.limiter.check("-token-", address)
        user = self.by_secret(secret)
        if user is None:
            self.limiter.failed("-token-", address)
        return user

    def _changed(self, user_id: int | None = None) -> None:
        with self._lock:
            self._users.clear()
            self._admin = None
        if user_id is not None:
            self.web_sessions.forget_user(user_id)

    # -- operations of the API (admins manage users; everyone their own password and tokens) ------------
    def add_user(self, caller: UserRef, name: str, *, password: str | None, admin: bool) -> dict[str, Any]:
        _admin_only(caller, "add users")
        out = users_lib.add_user(self.store, name, password=password, admin=admin)
        self._changed()
        return out

    def remove_user(self, caller: UserRef, name: str) -> dict[str, Any]:
        _admin_only(caller, "remove users")
        out = users_lib.remove_user(self.store, name)
        self._changed(out["id"])
        return out

    def set_password(self, caller: UserRef, name: str, password: str) -> dict[str, Any]:
        if name != caller.name:
            _admin_only(caller, "change another user's password")
        out = users_lib.set_password(self.store, name, password)
        self._changed(out["id"])
        return out

    def list_users(self, caller: UserRef) -> list[dict[str, Any]]:
        everyone = users_lib.list_users(self.store)
        return everyone if caller.admin else [u for u in everyone if u["name"] == caller.name]

    def create_token(self, caller: UserRef, *, user: str | None, name: str, expires: str | None) -> dict[str, Any]:
        owner = caller
        if user and user != caller.name:
            _admin_only(caller, "make tokens for other users")
            owner = users_lib.get_user(self.store, user)
        return self.tokens.create(owner, name=name, expires=expires)

    def server_token(self, name: str, user: UserRef | None) -> str | None:
        """A personal token of the user who starts a Jupyter server (the administrator when the
        start came with no user), for its kernels as LABWORK_TOKEN: its Spark kernels authenticate
        to /livy with it, as that user, never with the shared LABWORK_HOME/token. It expires after
        30 days, as a server may be extended or run without a limit."""
        owner = user or self.token_admin()
        return self.tokens.create(owner, name=name, expires="30d")["token"] if owner is not None else None

    def job_run_token(self, name: str) -> str | None:
        """A personal token of the installation's administrator for one job run's kernels (jobs have
        no user of their own yet), expiring after a day: a job's Spark kernels authenticate to
        /livy with it, never with the shared LABWORK_HOME/token."""
        admin = self.token_admin()
        return self.tokens.create(admin, name=name, expires="1d")["token"] if admin is not None else None

    def list_tokens(self, caller: UserRef, *, everyone: bool = False) -> list[dict[str, Any]]:
        if everyone:
            _admin_only(caller, "list every user's tokens")
        return self.tokens.list(None if everyone else caller)

    def revoke_token(self, caller: UserRef, token_id: int) -> dict[str, Any]:
        return self.tokens.revoke(token_id, caller)

    def announce_first_admin(self, say) -> None:  # noqa: ANN001 - a print function
        """On an empty store: make the first administrator and say how to log in (once: later
        starts find users). Neither a password nor a token is printed."""
        made = users_lib.ensure_admin(self.store)
        if made is None:
            return
        self._changed()
        say(f"created the administrator '{made.name}'. Log in to the dashboard with the token in "
            f"LABWORK_HOME/token, or give it a password: labwork user passwd {made.name} --password-stdin; "
            "add people with: labwork user add NAME")


def _admin_only(caller: UserRef, what: str) -> None:
    if not caller.admin:
        raise Forbidden(f"only administrators may {what}", where="user")
