"""The control plane's token: created once, mode 0600, required by every route."""
from __future__ import annotations

import secrets

from fastapi import HTTPException, Request

from labwork.server.token import load_or_create_token  # noqa: F401 - re-exported

COOKIE = "labwork_token"


def token_from_request(request: Request) -> str | None:
    """Bearer header, HTTP Basic password, `?token=` or the dashboard's cookie, in that order."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if header.lower().startswith("basic "):
        import base64
        try:
            user_pass = base64.b64decode(header[6:]).decode()
            return user_pass.split(":", 1)[1] if ":" in user_pass else None
        except Exception:
            return None
    return request.query_params.get("token") or request.cookies.get(COOKIE)


def token_ok(request: Request) -> bool:
    given = token_from_request(request)
    expected = request.app.state.ctx.token
    return bool(given) and secrets.compare_digest(given, expected)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def same_origin(request: Request) -> bool:
    """The request's Origin (or Referer) names this server, as a browser sends for its own pages."""
    from urllib.parse import urlparse
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    return urlparse(source).netloc == request.headers.get("host", "")


def require_token(request: Request) -> None:
    """FastAPI dependency for every API route.

    A token carried only by the dashboard's cookie authorises a state-changing call only from the
    dashboard's own pages (same origin), so another site cannot ride on a logged-in browser.
    """
    if not token_ok(request):
        raise HTTPException(status_code=401, detail="missing or wrong token (see LABWORK_HOME/token)",
                            headers={"WWW-Authenticate": "Bearer"})
    if request.method not in SAFE_METHODS and _only_cookie(request) and not same_origin(request):
        raise HTTPException(status_code=403, detail="cross-site request refused: send the token as a "
                            "bearer header, or call from the dashboard's own pages")


def _only_cookie(request: Request) -> bool:
    return (not request.headers.get("authorization") and not request.query_params.get("token")
            and bool(request.cookies.get(COOKIE)))
