"""The notebooks part of the control plane: the server manager, its loop and its routes."""
from __future__ import annotations

import asyncio

from fastapi import FastAPI

from labwork.notebooks.manager import ServerManager
from labwork.server.context import Context


def attach(app: FastAPI, ctx: Context) -> None:
    """Create the `ServerManager` (`ctx.parts["servers"]`), adopt servers at start-up, run the
    deadline loop, and include the routes. Shut-down stops the loop, never the servers."""
    from labwork.server.routes import notebooks as routes

    manager = ServerManager(ctx.settings, ctx.store, url=ctx.url)
    ctx.parts["servers"] = manager

    async def _startup() -> None:
        # the gateway part is attached after this one; its sessions go when a project's server stops
        manager.project_sessions = ctx.parts.get("gateway")
        manager.loop = asyncio.get_running_loop()
        await asyncio.to_thread(manager.adopt)
        manager.start_loop()

    async def _shutdown() -> None:
        await asyncio.to_thread(manager.stop_loop)

    ctx.startup.append(_startup)
    ctx.shutdown.append(_shutdown)
    app.include_router(routes.router)
