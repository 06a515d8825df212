"""Dashboard access: log-in exchanges the token for a session; forms carry a CSRF token.

Who is calling is decided once, for every mount, by the control plane's `AccessGuard`: it turns a
page opened with `?token=TOKEN` (what `labwork serve` prints) into a server-side session and
redirects to the clean URL, sends a browser without a session to `/login`, and refuses a
state-changing request that carries only the session cookie unless its Origin (or Referer) is this
server. The cookie (`labwork_session_<port>`: HttpOnly, SameSite=Strict, Path=/) holds a signed
random session id, never the token (`labwork.auth.sessions`).

Here: the login form and log-out (which deletes the session server-side), and the second layer
on every POST from a browser: the form's `csrf_token` must be the HMAC of the session id.
"""
from __future__ import annotations

import asyncio
import hmac
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from labwork.auth.identity import clean_url as _clean_url
from labwork.auth.identity import end_session, identity_of, start_session
from labwork.dashboard.web import dashboard_of
from labwork.errors import TooManyRequests, Unauthorized

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class NeedLogin(Exception):
    """Raised by page dependencies; turned into a redirect to /login (or the login page)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class CsrfRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- the CSRF token of a session ----------------------------------------------------------------------

def csrf_token(request: Request) -> str:
    """The forms' CSRF token: bound to this browser's session ("" before log-in)."""
    session_id = identity_of(request).session_id
    return dashboard_of(request).web_sessions.csrf_token(session_id) if session_id else ""


def set_cookies(_request: Request, response: Response) -> Response:
    """Pages set no cookie of their own any more (the session cookie is set at log-in)."""
    return response


def check_csrf(request: Request, given: str | None) -> None:
    """A browser's POST (session cookie) must carry its session's CSRF token; a caller holding the
    token itself (bearer, Basic) is no browser riding on a cookie and needs none."""
    identity = identity_of(request)
    if identity.via != "session":
        return
    if not given or not hmac.compare_digest(str(given), csrf_token(request)):
        raise CsrfRefused("the form's CSRF token is missing or wrong; reload the page and try again")


def clean_url(request: Request) -> str:
    """This request's path and query without `token`."""
    return _clean_url(request.url.path, request.query_params)


def safe_next(value: str | None) -> str:
    """Only local paths are followed after login."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


# --- dependencies ---------------------------------------------------------------------------------------

def page_auth(request: Request) -> None:
    """For HTML pages (GET). `AccessGuard` already sent anonymous browsers to /login."""
    if not identity_of(request).ok:
        raise NeedLogin()


def json_auth(request: Request) -> None:
    """For the pages' JSON and fragment endpoints (polled by the page's script)."""
    if not identity_of(request).ok:
        raise Unauthorized("missing or wrong token; log in again")


async def form_auth(request: Request) -> dict[str, Any]:
    """For every POST: an authenticated caller and the session's CSRF token (the Origin was
    checked by `AccessGuard`); returns the form as a dict (lists kept)."""
    if not identity_of(request).ok:
        raise NeedLogin()
    form = await request.form()
    check_csrf(request, form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER))
    out: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key == CSRF_FIELD or not isinstance(value, str):
            continue
        if key in out:
            prev = out[key]
            out[key] = prev + [value] if isinstance(prev, list) else [prev, value]
        else:
            out[key] = value
    return out


# --- handlers for the exceptions above ------------------------------------------------------------------

def install_handlers(app) -> None:
    from labwork.dashboard.web import render

    @app.exception_handler(NeedLogin)
    async def _need_login(request: Request, exc: NeedLogin) -> Response:
        if request.method == "GET" and not exc.reason:
            target = "/login?" + urlencode({"next": clean_url(request)})
            return RedirectResponse(target, status_code=303)
        message = "That token is wrong." if exc.reason == "wrong token" else \
            "Your session has no valid token: log in again."
        return render(request, "login.html", status_code=401, error=message, next=clean_url(request)
                      if request.method == "GET" else "/")

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return render(request, "message.html", status_code=403, title="Request refused",
                      error=f"Cross-site request protection refused this action: {exc.reason}. "
                            "Nothing was changed.")


# --- login / logout ---------------------------------------------------------------------------------

router = APIRouter()


WRONG_TOKEN = "That token is wrong. It is in LABWORK_HOME/token, and in the URL 'labwork serve' prints."
WRONG_PASSWORD = "That user name or password is wrong."


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", error: str | None = None) -> Response:
    from labwork.dashboard.web import render
    if identity_of(request).ok:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", status_code=401 if error else 200, next=safe_next(next),
                  error=WRONG_TOKEN if error == "token" else None, token_login=error == "token")


@router.post("/login")
async def login(request: Request) -> Response:
    """A user name and password (the configured authenticator), or a token, for a session: the
    cookie gets a signed session id, never a token. Failed attempts are limited per user name and
    per address (429 with Retry-After past the limit, `[auth] login_attempts`)."""
    from labwork.dashboard.web import render
    form = await request.form()
    given = str(form.get("token") or "").strip()
    name = str(form.get("user") or "").strip()[:200]
    password = str(form.get("password") or "")[:1024]
    nxt = safe_next(str(form.get("next") or "/"))
    accounts = dashboard_of(request).accounts
    address = request.client.host if request.client else None
    try:
        if given:
            user = await asyncio.to_thread(accounts.log_in_token, given, address)
        else:
            user = await asyncio.to_thread(accounts.log_in, name, password, address)
    except TooManyRequests as exc:
        response = render(request, "login.html", status_code=429, next=nxt, user=name,
                          error="Too many failed log-ins: wait a few minutes before trying again.")
        response.headers.update(exc.http_headers)
        return response
    if user is None:
        return render(request, "login.html", status_code=401, next=nxt, user=name, token_login=bool(given),
                      error=WRONG_TOKEN if given else WRONG_PASSWORD)
    response = RedirectResponse(nxt, status_code=303)
    await start_session(dashboard_of(request).web_sessions, request, response, user)
    return response


@router.post("/logout")
async def logout(request: Request, _form: dict = Depends(form_auth)) -> Response:
    """The session ends server-side: a copy of the old cookie is worth nothing after this."""
    response = RedirectResponse("/login", status_code=303)
    await end_session(dashboard_of(request).web_sessions, request, response)
    return response
