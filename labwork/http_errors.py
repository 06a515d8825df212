"""Errors become HTTP answers here, and only here (datasette's one `handle_exception`).

* `wants_json(path, headers)`: `/api`, `/livy`, `*.json` and `Accept: application/json` are
  answered in JSON; everything else is a page.
* `translate(exc)`: foreign errors (Starlette's `HTTPException`, FastAPI's request validation) become
  `LabworkError`s by one table, so every answer has one shape, whoever raised it.
* `json_answer(exc)`: that shape, `LabworkError.to_dict()`, with the status and headers of its class.
* `install(app, page=...)`: the handlers. `page(request, exc)` renders a page (the dashboard's error
  page); without it, or for a JSON request, the answer is JSON.

Routes and pages raise; nothing between them and this boundary turns an error into an answer.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from labwork import errors
from labwork.errors import LabworkError

JSON_PREFIXES = ("/api/", "/livy/")
HTML_API_PATHS = frozenset({"/api/docs", "/api/docs/oauth2-redirect"})  # pages served under /api

PageRenderer = Callable[[Request, LabworkError], Response | Awaitable[Response]]


def wants_json(path: str, headers: Headers) -> bool:
    """Whether this request is answered in JSON (an API, a page's polled endpoint, a script)."""
    if path in HTML_API_PATHS:
        return False
    if path.startswith(JSON_PREFIXES) or path in ("/api", "/livy") or path.endswith(".json"):
        return True
    accept = headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request"


def _from_http_exception(exc: StarletteHTTPException) -> LabworkError:
    out = errors.error_class_for_status(exc.status_code)(str(exc.detail))
    if exc.status_code == 400:
        out = errors.InvalidRequest(str(exc.detail))
    elif type(out) is LabworkError:
        out = errors.HTTPError(str(exc.detail))
        out.http_status = exc.status_code
    if exc.headers:
        out.http_headers = {**out.http_headers, **exc.headers}
    return out


# The one table: a foreign exception type and how it becomes a LabworkError.
FOREIGN: dict[type[Exception], Callable[[Any], LabworkError]] = {
    RequestValidationError: lambda exc: errors.InvalidRequest(_validation_message(exc)),
    StarletteHTTPException: _from_http_exception,
}


def translate(exc: Exception) -> LabworkError:
    """`exc` as a LabworkError (itself when it is one)."""
    if isinstance(exc, LabworkError):
        return exc
    for kind, convert in FOREIGN.items():
        if isinstance(exc, kind):
            return convert(exc)
    raise TypeError(f"no translation for {type(exc).__name__}")


def json_answer(exc: LabworkError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one JSON shape of every error answer."""
    return JSONResponse(exc.to_dict(), status_code=exc.http_status,
                        headers={**exc.http_headers, **(headers or {})} or None)


def install(app: Any, page: PageRenderer | None = None) -> None:
    """Answer every LabworkError and every foreign error of `FOREIGN` raised by `app`'s routes:
    JSON where `wants_json`, else `page(request, exc)` (JSON too when there is no page)."""

    async def handle(request: Request, exc: Exception) -> Response:
        error = translate(exc)
        if page is None or wants_json(request.url.path, request.headers):
            return json_answer(error)
        answer = page(request, error)
        return await answer if isinstance(answer, Awaitable) else answer

    for kind in (LabworkError, *FOREIGN):
        app.add_exception_handler(kind, handle)
