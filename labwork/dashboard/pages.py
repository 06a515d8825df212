"""The dashboard part: server-rendered pages on the control plane (see docs/dashboard.md).

    /                          projects (add one by folder)
    /projects/{id}/jupyter     the project's Jupyter service page
    /projects/{id}/notebooks   notebooks with a read-only preview
    /projects/{id}/compute     compute targets, run configurations, Prepare
    /projects/{id}/runs, /runs run history; /runs/{run}; /runs/compare?run=a&run=b
    /spark                     the gateway's Spark sessions and batches
    /login                     asks for the token when the page was opened without it
    /static/...                the page's CSS, script and icon (no secrets; served without the token)
    /favicon.ico               where browsers look for the icon without a <link>: the SVG one
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from labwork.dashboard.envcache import EnvChecks
from labwork.dashboard.jobs import Jobs
from labwork.dashboard.previews import PreviewCache
from labwork.server.context import Context


@dataclass
class Dashboard:
    """The dashboard's long-lived state, in `ctx.parts["dashboard"]`."""

    jobs: Jobs = field(default_factory=Jobs)
    env_checks: EnvChecks = field(default_factory=EnvChecks)
    previews: PreviewCache = field(default_factory=PreviewCache)


def attach(app: FastAPI, ctx: Context) -> None:
    """Plug this part into the control plane (routes, ctx.parts, start-up/shut-down hooks)."""
    from labwork.dashboard import (auth, compute_page, jobs, jupyter_page, notebooks_page, projects_page,
                                   runs_pages, spark_page)
    from labwork.dashboard.web import STATIC

    ctx.parts["dashboard"] = Dashboard()
    auth.install_handlers(app)
    for module in (auth, jobs, projects_page, jupyter_page, notebooks_page, compute_page, runs_pages,
                   spark_page):
        app.include_router(module.router, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="dashboard-static")
    app.add_api_route("/favicon.ico", _favicon, methods=["GET", "HEAD"], include_in_schema=False)


def _favicon() -> RedirectResponse:
    """Browsers ask for /favicon.ico on their own (a JSON view, a log, a download): no 404 for them."""
    return RedirectResponse("/static/favicon.svg", status_code=308, headers={"Cache-Control": "max-age=86400"})
