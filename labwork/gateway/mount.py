"""Mount the Livy gateway at /livy on the control plane."""
from __future__ import annotations

import logging
import secrets

from fastapi import FastAPI, Request

from labwork.server.context import Context

log = logging.getLogger("labwork.gateway")
PREFIX = "/livy"


def attach(app: FastAPI, ctx: Context) -> None:
    """Mount the gateway (state under `home/gateway`); the control plane token is the credential
    (as a bearer token or as the HTTP Basic password, which is what sparkmagic sends)."""
    from labwork.gateway.app import create_gateway_app
    from labwork.server.auth import token_from_request

    token = ctx.token

    def authenticate(request: Request) -> bool:
        given = token_from_request(request)
        return bool(given) and secrets.compare_digest(given, token)

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
