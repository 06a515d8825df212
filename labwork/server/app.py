"""The control plane's FastAPI application and the one place errors become HTTP answers."""
from __future__ import annotations

import asyncio
import inspect
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from labwork import __version__
from labwork.errors import LabworkError
from labwork.private import private_dir
from labwork.server.auth import AccessGuard, load_or_create_token, require_token
from labwork.server.context import Context
from labwork.server.openapi import ERROR_RESPONSES
from labwork.server.openapi import install as install_openapi
from labwork.server.sessions import WebSessions
from labwork.settings import Settings
from labwork.store.db import Store


HTTP_KINDS = {400: "ValidationError", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
              405: "MethodNotAllowed", 409: "Conflict", 413: "TooLarge", 415: "UnsupportedMediaType",
              503: "Unavailable"}


def error_response(exc: LabworkError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request"


async def _run_hooks(hooks: list) -> None:
    for hook in hooks:
        result = hook()
        if inspect.isawaitable(result):
            await result


def create_app(settings: Settings, *, url: str = "") -> FastAPI:
    """Build the app: store (migrated), token, API routes and every part (servers, gateway, ...)."""
    private_dir(settings.home)
    ctx = Context(settings=settings, store=Store(settings.db_url),
                  token=load_or_create_token(settings.token_file), url=url)
    started = datetime.now(UTC)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await _run_hooks(ctx.startup)
        try:
            yield
        finally:
            await _run_hooks(list(reversed(ctx.shutdown)))
            await asyncio.to_thread(ctx.store.dispose)

    app = FastAPI(title="labwork control plane", version=__version__, lifespan=lifespan,
                  openapi_url="/api/openapi.json", docs_url="/api/docs", redoc_url=None,
                  responses=ERROR_RESPONSES)
    install_openapi(app)
    app.state.ctx = ctx
    # One check of who calls and whether the request may change state, for /api, pages and /livy.
    sessions = ctx.parts["web_sessions"] = WebSessions(ctx.store, ctx.token, settings.session_hours * 3600)
    app.add_middleware(AccessGuard, token=ctx.token, sessions=sessions)

    @app.exception_handler(LabworkError)
    async def _labwork_error(_request: Request, exc: LabworkError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Starlette's own answers (no such route, method not allowed, auth) in the error shape."""
        kind = HTTP_KINDS.get(exc.status_code, "HTTPError")
        return JSONResponse({"error": kind, "msg": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "ValidationError", "msg": _validation_message(exc)}, status_code=400)

    @app.get("/api/status", dependencies=[Depends(require_token)])
    def status() -> dict:
        return {"ok": True, "version": __version__, "home": str(settings.home),
                "db": settings.db_url.split(":", 1)[0], "started": started.isoformat(),
                "parts": sorted(ctx.parts)}

    from labwork.server.parts import attach_parts
    attach_parts(app, ctx)
    return app
