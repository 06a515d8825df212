"""The control plane's token: created once, mode 0600, required by every route."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from fastapi import HTTPException, Request

COOKIE = "labwork_token"


def load_or_create_token(path: Path) -> str:
    if path.exists():
        token = path.read_text().strip()
        if token:
            os.chmod(path, 0o600)
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


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


def require_token(request: Request) -> None:
    """FastAPI dependency for every API route."""
    if not token_ok(request):
        raise HTTPException(status_code=401, detail="missing or wrong token (see LABWORK_HOME/token)",
                            headers={"WWW-Authenticate": "Bearer"})
