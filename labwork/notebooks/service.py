"""The notebooks part's life in the control plane: adopt servers at start-up, run the deadline
loop, stop the loop at shut-down (never the servers). Its routes are `labwork.server.routes.notebooks`."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from labwork.notebooks.manager import ServerManager

Hook = Callable[[], Awaitable[None]]


def attach(manager: ServerManager, *, startup: list[Hook], shutdown: list[Hook]) -> None:
    """Append the manager's start-up hook (take the loop, adopt the servers still running, start
    the deadline loop) and its shut-down hook (stop the loop) to the control plane's lists."""

    async def _startup() -> None:
        manager.loop = asyncio.get_running_loop()
        await asyncio.to_thread(manager.adopt)
        manager.start_loop()

    async def _shutdown() -> None:
        await asyncio.to_thread(manager.stop_loop)

    startup.append(_startup)
    shutdown.append(_shutdown)
