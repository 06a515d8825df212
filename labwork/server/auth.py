"""Who is calling, and may this request change state: one mechanism for every mount of the
control plane (`/api`, the dashboard's pages, `/livy`).

`AccessGuard` is pure ASGI middleware on the top app, so it runs before any routing, for every
mounted sub-app too. For each request it

1. finds the credential and the user it stands for (`labwork.auth.accounts.Accounts`): a token
   (LABWORK_HOME/token: the first admin; or a personal token) as a bearer header or as HTTP
   Basic's password (sparkmagic), the token in `?token=` (the links `labwork serve` prints), a
   trusted reverse proxy's user header (`[auth] authenticator = "header"`, only from
   `trusted_proxies`), or the dashboard's session cookie (`labwork.auth.sessions`; the cookie
   never holds a token). A wrong explicit credential is a wrong credential: it does not fall back
   to the cookie;
2. refuses cross-site requests (`labwork.access.cross_site_problem`): a state-changing request
   from another origin, whatever it carries, and one authenticated only by the cookie unless its
   Origin/Referer is this server: 403, nothing changed;
3. refuses anonymous requests except to the login page and static assets: 401 JSON for `/api`,
   `/livy` and the pages' `.json` endpoints, a redirect to `/login` for pages;
4. exchanges a valid `?token=` on a page for a session and redirects to the clean URL, as Jupyter
   does.

The identity it found is in `request.scope["state"]["labwork_identity"]`
(`labwork.auth.identity.identity_of`). API routes also depend on `labwork.auth.identity.require_token`,
which re-checks it and refuses a JSON body sent with another Content-Type (415).
"""
from __future__ import annotations

import asyncio
import html
from urllib.parse import urlencode

from fastapi import Request
from starlette.datastructures import Headers, QueryParams
from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse, Response

from labwork.access import cross_site_problem, presented_secret
from labwork.auth.identity import STATE_KEY, Identity, clean_url, session_cookie_name, start_session
from labwork.auth.accounts import Accounts
from labwork.errors import Forbidden, Unauthorized
from labwork.http_errors import json_answer, wants_json

LEGACY_COOKIE = "labwork_token"  # earlier versions kept the token itself in this cookie
PUBLIC_PATHS = frozenset({"/login", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


# -- answers ---------------------------------------------------------------------------------------

def _page(status: int, title: str, text: str, link: tuple[str, str] | None = None) -> Response:
    more = f' <a href="{html.escape(link[0])}">{html.escape(link[1])}</a>' if link else ""
    body = (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p id=page-error>{html.escape(text)}{more}</p>")
    return Response(body, status_code=status, media_type="text/html",
                    headers={"Content-Security-Policy": "default-src 'none'", "Cache-Control": "no-store"})


def cross_site_refusal(path: str, headers: Headers, problem: str) -> Response:
    text = f"Cross-site request protection refused this action: {problem}. Nothing was changed."
    if wants_json(path, headers):
        return json_answer(Forbidden(text + " Send the token as a bearer header, or act from the "
                                     "dashboard's own pages."))
    return _page(403, "Request refused", text)


def unauthenticated(path: str, query: QueryParams, headers: Headers, method: str,
                    identity: Identity) -> Response:
    if wants_json(path, headers):
        msg = identity.problem or ("missing token or session: send the token (LABWORK_HOME/token) as "
                                   "a bearer header or HTTP Basic password, or log in to the dashboard")
        scheme = 'Basic realm="livy"' if path.startswith("/livy") else "Bearer"
        return json_answer(Unauthorized(msg), headers={"WWW-Authenticate": scheme})
    if method in ("GET", "HEAD"):
        params = {"next": clean_url(path, query)}
        if identity.problem:
            params["error"] = "token"
        return RedirectResponse("/login?" + urlencode(params), status_code=303)
    return _page(401, "Log in again", "This request carries no valid session or token: nothing was "
                 "changed.", link=("/login", "Log in"))


# -- the middleware ------------------------------------------------------------------------------------

class AccessGuard:
    """Pure ASGI middleware on the control plane's app (see the module docstring)."""

    def __init__(self, app, *, accounts: Accounts) -> None:
        self.app = app
        self.accounts = accounts
        self.sessions = accounts.web_sessions

    async def identify(self, request: HTTPConnection) -> Identity:
        secret, livy_user, present = presented_secret(request.headers)
        if present:
            user = await asyncio.to_thread(self.accounts.by_secret, secret)
            if user is not None:
                return Identity("token", user=user, livy_user=livy_user)
            return Identity(problem="wrong, revoked or expired token in the Authorization header "
                                    "(LABWORK_HOME/token or a personal token: labwork token create)")
        if "token" in request.query_params:
            user = await asyncio.to_thread(self.accounts.by_secret, request.query_params.get("token"))
            if user is not None:
                return Identity("query", user=user)
            return Identity(problem="wrong token in the URL (see LABWORK_HOME/token)")
        client = request.client.host if request.client else None
        if self.accounts.proxy_header and self.accounts.proxy_header in request.headers:
            user = await asyncio.to_thread(self.accounts.pre_authenticated, client, request.headers)
            if user is not None:
                return Identity("proxy", user=user)
        session_id = self.sessions.unsign(request.cookies.get(session_cookie_name(request)))
        if session_id:
            user_id = self.sessions.known_user(session_id)
            if user_id is None:
                user_id = await asyncio.to_thread(self.sessions.user_of, session_id)
            if user_id is not None:
                user = self.accounts.known(user_id)
                if user is False:
                    user = await asyncio.to_thread(self.accounts.by_id, user_id)
                if user is not None:
                    return Identity("session", user=user, session_id=session_id)
        return Identity()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # a websocket's handshake has headers, cookies and a query like a request, but no body
        request = Request(scope) if scope["type"] == "http" else HTTPConnection(scope)
        identity = await self.identify(request)
        scope.setdefault("state", {})[STATE_KEY] = identity
        path = scope["path"]
        if scope["type"] == "http" and LEGACY_COOKIE in request.cookies:
            send = _forget_legacy_cookie(send)
        if scope["type"] == "websocket":
            # A browser opens a websocket to any site with its cookies attached, and no preflight
            # (cross-site websocket hijacking): one authenticated by the cookie must come from here.
            if not identity.ok or cross_site_problem("WEBSOCKET", request.headers,
                                                     ambient_only=identity.via in ("session", "proxy")):
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        problem = cross_site_problem(method, request.headers, ambient_only=identity.via in ("session", "proxy"))
        if problem:
            await cross_site_refusal(path, request.headers, problem)(scope, receive, send)
            return
        if not identity.ok and not _is_public(path):
            await unauthenticated(path, request.query_params, request.headers, method,
                                  identity)(scope, receive, send)
            return
        if identity.via == "query" and method in ("GET", "HEAD") and not wants_json(path, request.headers):
            response = RedirectResponse(clean_url(path, request.query_params), status_code=303)
            await start_session(self.sessions, request, response)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _forget_legacy_cookie(send):
    """A browser still holding the token in the old cookie (sent to every port of 127.0.0.1) is
    told to drop it, with whatever answer this request gets."""
    expire = f"{LEGACY_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax".encode("latin-1")

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message, headers=[*message.get("headers", []), (b"set-cookie", expire)])
        await send(message)
    return wrapped
