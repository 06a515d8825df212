"""The control plane's FastAPI application: the services (`labwork.server.services`), the access
guard, the error boundary, and every part's routes."""
from __future__ import annotations

import asyncio
import inspect
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import Depends, FastAPI

from labwork import __version__
from labwork.auth.identity import require_token
from labwork.http_errors import install as install_error_boundary
from labwork.private import private_dir
from labwork.server.auth import AccessGuard
from labwork.server.openapi import ERROR_RESPONSES
from labwork.server.project_access import project_access
from labwork.server.openapi import install as install_openapi
from labwork.server.services import Hook, build_services
from labwork.settings import Settings


async def _run_hooks(hooks: list[Hook]) -> None:
    for hook in hooks:
        result = hook()
        if inspect.isawaitable(result):
            await result


def create_app(settings: Settings, *, url: str = "") -> FastAPI:
    """Build the app: the services (store migrated, token, servers, history, gateway, dashboard),
    API routes and pages, all behind one `AccessGuard` and one error boundary."""
    private_dir(settings.home)
    services = build_services(settings, url=url)
    started = datetime.now(UTC)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await _run_hooks(services.startup)
        try:
            yield
        finally:
            await _run_hooks(list(reversed(services.shutdown)))
            await asyncio.to_thread(services.store.dispose)

    app = FastAPI(title="labwork control plane", version=__version__, lifespan=lifespan,
                  openapi_url="/api/openapi.json", docs_url="/api/docs", redoc_url=None,
                  responses=ERROR_RESPONSES, dependencies=[Depends(project_access)])
    install_openapi(app)
    app.state.services = services
    # One check of who calls and whether the request may change state, for /api, pages and /livy.
    app.add_middleware(AccessGuard, accounts=services.accounts)

    # One error boundary: JSON for /api, *.json and Accept: application/json, else the dashboard's page.
    from labwork.dashboard.web import error_page
    install_error_boundary(app, page=error_page)

    @app.get("/api/status", dependencies=[Depends(require_token)])
    def status() -> dict:
        return {"ok": True, "version": __version__, "home": str(settings.home),
                "db": settings.db_url.split(":", 1)[0], "started": started.isoformat(),
                "parts": services.names()}

    _include_parts(app)
    return app


def _include_parts(app: FastAPI) -> None:
    """Every part's routes: projects and notebooks (`labwork.server.routes`), run history, the
    gateway at /livy, the dashboard's pages."""
    from labwork.dashboard import pages as dashboard
    from labwork.gateway.mount import mount as mount_gateway
    from labwork.dashboard import jobs_pages
    from labwork.history.service import router as history_routes
    from labwork.jobs import routes as jobs_routes
    from labwork.server.routes import notebooks, projects, users
    from labwork.server.spark_proxy import mount_spark_uis
    from labwork.server.user_proxy import mount_user_servers

    services = app.state.services
    app.include_router(projects.router)
    app.include_router(users.router)
    app.include_router(notebooks.router)
    app.include_router(history_routes)
    app.include_router(jobs_routes.router(services.jobs))
    app.include_router(jobs_pages.router(services.jobs), include_in_schema=False)
    mount_gateway(app, services.gateway_app)
    dashboard.attach(app)
    # Users' Jupyter servers and the Spark UIs behind this origin, after the pages: the dashboard's
    # own /spark routes (/spark, /spark/{kind}/{id}/log) match first.
    services.shutdown.append(mount_user_servers(app, services.store).aclose)
    services.shutdown.append(mount_spark_uis(app, services.store, services.gateway).aclose)
