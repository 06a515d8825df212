"""The control plane's FastAPI application: the store, the token, the error boundary and every part."""
from __future__ import annotations

import asyncio
import inspect
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import Depends, FastAPI

from labwork import __version__
from labwork.http_errors import install as install_error_boundary
from labwork.private import private_dir
from labwork.server.auth import AccessGuard, load_or_create_token, require_token
from labwork.server.context import Context
from labwork.server.openapi import ERROR_RESPONSES
from labwork.server.openapi import install as install_openapi
from labwork.server.sessions import WebSessions
from labwork.settings import Settings
from labwork.store.db import Store


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

    # One error boundary: JSON for /api, *.json and Accept: application/json, else the dashboard's page.
    from labwork.dashboard.web import error_page
    install_error_boundary(app, page=error_page)

    @app.get("/api/status", dependencies=[Depends(require_token)])
    def status() -> dict:
        return {"ok": True, "version": __version__, "home": str(settings.home),
                "db": settings.db_url.split(":", 1)[0], "started": started.isoformat(),
                "parts": sorted(ctx.parts)}

    from labwork.server.parts import attach_parts
    attach_parts(app, ctx)
    return app
