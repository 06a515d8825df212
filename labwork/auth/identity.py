"""A request's identity as `labwork.server.auth.AccessGuard` decided it, and what routes and pages
do with it: the API routes' `require_token` dependency, the session cookie's name, log-in and
log-out. Request-independent of the app: parts import this, never `labwork.server`."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from starlette.datastructures import QueryParams
from starlette.responses import Response

from labwork.access import SAFE_METHODS, json_type_problem
from labwork.auth.sessions import WebSessions, cookie_name
from labwork.auth.users import UserRef
from labwork.errors import Unauthorized, UnsupportedMediaType

STATE_KEY = "labwork_identity"


@dataclass(frozen=True)
class Identity:
    """How a request authenticated: `via` is "token" (header), "query" (`?token=`), "session"
    (the dashboard's cookie), "proxy" (a trusted proxy's header) or None; `user` is who it acts as
    (name, admin flag); `livy_user` the user name of HTTP Basic; `problem` says why not, when a
    credential was wrong."""

    via: str | None = None
    user: UserRef | None = None
    session_id: str | None = None
    problem: str | None = None
    livy_user: str | None = None

    @property
    def ok(self) -> bool:
        return self.via is not None and self.user is not None


def identity_of(request: Request) -> Identity:
    """The identity `AccessGuard` put on this request (anonymous when it did not run)."""
    return request.scope.get("state", {}).get(STATE_KEY) or Identity()


def port_of(scope: dict[str, Any]) -> int | None:
    """The port this request came in on (the cookie's name carries it)."""
    server = scope.get("server")
    return int(server[1]) if server and len(server) > 1 and server[1] else None


def session_cookie_name(request: Request) -> str:
    return cookie_name(port_of(request.scope))


def clean_url(path: str, query: QueryParams) -> str:
    """`path?query` without `token`."""
    rest = [(k, v) for k, v in query.multi_items() if k != "token"]
    return path + (("?" + urlencode(rest)) if rest else "")


# -- log-in and log-out (the dashboard's login form and logout button, and `?token=` links) -----------

async def start_session(sessions: WebSessions, request: Request, response: Response,
                        user: UserRef | None = None) -> str:
    """Make a session of `user` (default: this request's) for this browser and set its cookie on
    `response`; returns the session id."""
    user = user or identity_of(request).user
    session_id, value = await asyncio.to_thread(sessions.create, user.id if user else None)
    response.set_cookie(session_cookie_name(request), value, httponly=True, samesite="strict", path="/")
    return session_id


async def end_session(sessions: WebSessions, request: Request, response: Response) -> None:
    """Delete this browser's session server-side and clear its cookie."""
    session_id = identity_of(request).session_id
    if session_id:
        await asyncio.to_thread(sessions.end, session_id)
    response.delete_cookie(session_cookie_name(request), path="/", httponly=True, samesite="strict")


# -- the API routes' dependency -------------------------------------------------------------------------

def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def current_user(request: Request) -> UserRef:
    """The user this request acts as (401 when none: `AccessGuard` refused those already)."""
    user = identity_of(request).user
    if user is None:
        raise Unauthorized("missing or wrong token (see LABWORK_HOME/token)")
    return user


def require_token(request: Request) -> None:
    """FastAPI dependency of every API route: an authenticated caller (`AccessGuard` already
    refused the others; this holds if a route is ever served without it), and a route that reads a
    JSON body gets JSON (415 otherwise, naming the expected type; an empty body needs none)."""
    if not identity_of(request).ok:
        raise Unauthorized("missing or wrong token (see LABWORK_HOME/token)")
    route = request.scope.get("route")
    if request.method not in SAFE_METHODS and getattr(route, "body_field", None) is not None \
            and _has_body(request):
        problem = json_type_problem(request.headers.get("content-type"))
        if problem:
            raise UnsupportedMediaType(problem, where=f"{request.method} {request.url.path}")
