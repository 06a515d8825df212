"""The server layer's routes reach the services through these typed dependencies, one place
(jupyter_server's `JupyterHandler.kernel_manager` style): `services(request).servers`, never a
lookup by string."""
from __future__ import annotations

from fastapi import Request

from labwork.notebooks.manager import ServerManager
from labwork.server.services import Services
from labwork.store.db import Store


def services(request: Request) -> Services:
    """The control plane's `Services` (`create_app` keeps them on `app.state.services`)."""
    return request.app.state.services


def servers(request: Request) -> ServerManager:
    return services(request).servers


def store(request: Request) -> Store:
    return services(request).store
