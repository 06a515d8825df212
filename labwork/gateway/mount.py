"""Mount the Livy gateway at /livy on the control plane."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request

from labwork.server.context import Context

log = logging.getLogger("labwork.gateway")
PREFIX = "/livy"


def attach(app: FastAPI, ctx: Context) -> None:
    """Mount the gateway (state under `home/gateway`). Who may call it is decided by the control
    plane's `AccessGuard`, as for every other mount: the control plane's token (a bearer token or
    the HTTP Basic password, which is what sparkmagic sends), or the dashboard's session for
    reading and for same-origin requests. The gateway's own guard re-checks that verdict."""
    from labwork.gateway.app import create_gateway_app
    from labwork.server.auth import identity_of

    def authenticate(request: Request) -> bool:
        return identity_of(request).ok

    on_statement = ctx.parts.get("gateway_on_statement")
    sub = create_gateway_app(ctx.settings.gateway, state_dir=ctx.settings.home / "gateway",
                             authenticate=authenticate, on_statement=on_statement)
    gateway = sub.state.gateway
    ctx.parts["gateway"] = gateway
    ctx.parts["gateway_app"] = sub

    async def start() -> None:
        await gateway.ensure_started()

    async def stop() -> None:
        await gateway.stop()

    ctx.startup.append(start)
    ctx.shutdown.append(stop)
    app.mount(PREFIX, sub)
