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

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles


def attach(app: FastAPI) -> None:
    """The pages' routes, the login/CSRF handlers and the static files on the control plane's app;
    what the pages read is the `Dashboard` the composition made (`labwork.dashboard.state`)."""
    from labwork.dashboard import (auth, compute_page, jobs, jupyter_page, members_page, notebooks_page,
                                   projects_page, runs_pages, spark_page)
    from labwork.dashboard.web import STATIC

    auth.install_handlers(app)
    for module in (auth, jobs, projects_page, jupyter_page, notebooks_page, compute_page, runs_pages,
                   spark_page, members_page):
        app.include_router(module.router, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="dashboard-static")
    app.add_api_route("/favicon.ico", _favicon, methods=["GET", "HEAD"], include_in_schema=False)


def _favicon() -> RedirectResponse:
    """Browsers ask for /favicon.ico on their own (a JSON view, a log, a download): no 404 for them."""
    return RedirectResponse("/static/favicon.svg", status_code=308, headers={"Cache-Control": "max-age=86400"})
