"""Dashboard access: the control plane's token in a session cookie, a login page, CSRF protection.

* A page opened with `?token=TOKEN` (what `labwork serve` prints) sets the session cookie
  (`labwork.server.auth.COOKIE`, HttpOnly, SameSite=Lax) and redirects to the same URL without the
  token, as Jupyter does. Without a valid token a page redirects to `/login`.
* Every POST is checked three ways: the token (cookie), the Origin (or Referer) header must be
  this server, and the form's `csrf_token` must be the HMAC of the browser's session nonce (a
  second HttpOnly cookie) keyed by the control plane's token. A refused POST changes nothing.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from labwork.server.auth import COOKIE, token_ok

SESSION_COOKIE = "labwork_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class NeedLogin(Exception):
    """Raised by page dependencies; turned into a redirect to /login (or the login page)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class TokenInURL(Exception):
    """A page was opened with a valid `?token=`: set the cookie and redirect to the clean URL."""


class CsrfRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JsonUnauthorized(Exception):
    pass


# --- the session nonce and its CSRF token -----------------------------------------------------------

def session_nonce(request: Request) -> str:
    """The browser's session nonce (made once per request when the cookie is absent)."""
    nonce = request.cookies.get(SESSION_COOKIE) or getattr(request.state, "new_session", None)
    if not nonce or len(nonce) > 100:
        nonce = secrets.token_urlsafe(24)
        request.state.new_session = nonce
    return nonce


def csrf_token(request: Request) -> str:
    key = request.app.state.ctx.token.encode()
    return hmac.new(key, b"labwork-csrf:" + session_nonce(request).encode(), hashlib.sha256).hexdigest()


def set_cookies(request: Request, response: Response, *, token: str | None = None) -> Response:
    """Set the session nonce cookie when it is new, and the token cookie when `token` is given."""
    new = getattr(request.state, "new_session", None)
    if new:
        response.set_cookie(SESSION_COOKIE, new, httponly=True, samesite="lax", path="/")
    if token is not None:
        response.set_cookie(COOKIE, token, httponly=True, samesite="lax", path="/")
    return response


def _same_origin(request: Request, value: str) -> bool:
    parts = urlsplit(value)
    host = request.headers.get("host", "")
    return bool(parts.netloc) and parts.netloc.lower() == host.lower() and parts.scheme in ("http", "https")


def check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == "null" or not _same_origin(request, origin):
            raise CsrfRefused(f"the request came from another site ({origin})")
        return
    referer = request.headers.get("referer")
    if referer and not _same_origin(request, referer):
        raise CsrfRefused("the request came from another site (Referer)")


def check_csrf(request: Request, given: str | None) -> None:
    if not request.cookies.get(SESSION_COOKIE):
        raise CsrfRefused("the browser sent no session cookie; reload the page and try again")
    if not given or not hmac.compare_digest(str(given), csrf_token(request)):
        raise CsrfRefused("the form's CSRF token is missing or wrong; reload the page and try again")


def clean_url(request: Request) -> str:
    """This request's path and query without `token`."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    return request.url.path + (("?" + urlencode(query)) if query else "")


def safe_next(value: str | None) -> str:
    """Only local paths are followed after login."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


# --- dependencies ---------------------------------------------------------------------------------------

def page_auth(request: Request) -> None:
    """For HTML pages (GET)."""
    if "token" in request.query_params:
        if token_ok(request):
            raise TokenInURL()
        raise NeedLogin("wrong token")
    if not token_ok(request):
        raise NeedLogin()


def json_auth(request: Request) -> None:
    """For the pages' JSON and fragment endpoints (polled by the page's script)."""
    if not token_ok(request):
        raise JsonUnauthorized()


async def form_auth(request: Request) -> dict[str, Any]:
    """For every POST: token, Origin and CSRF token; returns the form as a dict (lists kept)."""
    if not token_ok(request):
        raise NeedLogin()
    check_origin(request)
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

    @app.exception_handler(TokenInURL)
    async def _token_in_url(request: Request, _exc: TokenInURL) -> Response:
        response = RedirectResponse(clean_url(request), status_code=303)
        session_nonce(request)
        return set_cookies(request, response, token=request.app.state.ctx.token)

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

    @app.exception_handler(JsonUnauthorized)
    async def _json_401(_request: Request, _exc: JsonUnauthorized) -> Response:
        return JSONResponse({"error": "Unauthorized", "msg": "missing or wrong token; log in again"},
                            status_code=401)


# --- login / logout ---------------------------------------------------------------------------------

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    from labwork.dashboard.web import render
    if token_ok(request) and "token" not in request.query_params:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    from labwork.dashboard.web import render
    check_origin(request)
    form = await request.form()
    check_csrf(request, form.get(CSRF_FIELD))
    given = str(form.get("token") or "").strip()
    nxt = safe_next(str(form.get("next") or "/"))
    expected = request.app.state.ctx.token
    if not given or not secrets.compare_digest(given, expected):
        return render(request, "login.html", status_code=401, next=nxt,
                      error="That token is wrong. It is in LABWORK_HOME/token, and in the URL "
                            "'labwork serve' prints.")
    return set_cookies(request, RedirectResponse(nxt, status_code=303), token=expected)


@router.post("/logout")
async def logout(request: Request, _form: dict = Depends(form_auth)) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
