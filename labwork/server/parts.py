"""Every part of the control plane plugs in here, one `attach(app, ctx)` each.

A part includes its routers, stores its long-lived objects in `ctx.parts` and appends start-up and
shut-down hooks to `ctx.startup` / `ctx.shutdown`.
"""
from __future__ import annotations

from fastapi import FastAPI

from labwork.server.context import Context


def attach_parts(app: FastAPI, ctx: Context) -> None:
    from labwork.server.routes import projects
    projects.attach(app, ctx)
    from labwork.notebooks import service as notebooks
    notebooks.attach(app, ctx)
    from labwork.history import service as history
    history.attach(app, ctx)
    # Statements of a project's Spark kernels become run-history entries (when history is on).
    ctx.parts["gateway_on_statement"] = ctx.parts["history"]["record_gateway_statement"]
    from labwork.gateway import mount as gateway
    gateway.attach(app, ctx)
    # A session that ends (deleted, its driver dead, failed to start) ends its run.
    from labwork.gateway.gateway import Gateway
    gw: Gateway = ctx.parts["gateway"]
    gw.on_session_end = ctx.parts["history"]["end_gateway_session"]
    from labwork.jobs import service as jobs
    ctx.parts["jobs"] = jobs.attach(app, settings=ctx.settings, store=ctx.store, control_url=lambda: ctx.url,
                                    startup=ctx.startup, shutdown=ctx.shutdown)
    from labwork.dashboard import pages as dashboard
    dashboard.attach(app, ctx)
