"""The Livy gateway as a part of the control plane: made with run history's hooks, mounted at /livy."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request

from labwork.settings import Settings
from labwork.spark_properties import SPARK_UI_ROOT

if TYPE_CHECKING:
    from labwork.gateway.gateway import Gateway
    from labwork.gateway.visibility import LivyAccess

PREFIX = "/livy"


def create_gateway(settings: Settings, *, on_statement: Callable[[dict, dict], None] | None = None,
                   on_session_end: Callable[[dict], None] | None = None,
                   access: LivyAccess | None = None) -> tuple[Gateway, FastAPI]:
    """The gateway (state under `home/gateway`) and its Livy app, to be mounted with `mount`.

    Who may call it is decided by the control plane's `AccessGuard`, as for every other mount: the
    control plane's token (a bearer token or the HTTP Basic password, which is what sparkmagic
    sends), or the dashboard's session for reading and for same-origin requests. The gateway's own
    guard re-checks that verdict. A mounted app has no lifespan: the control plane's start-up and
    shut-down hooks call `Gateway.ensure_started` / `Gateway.stop`. `access` decides who owns a
    session and who may see it (`labwork.gateway.visibility`)."""
    from labwork.auth.identity import identity_of
    from labwork.gateway.app import create_gateway_app

    def authenticate(request: Request) -> bool:
        return identity_of(request).ok

    sub = create_gateway_app(settings.gateway, state_dir=settings.home / "gateway",
                             authenticate=authenticate, on_statement=on_statement, access=access)
    gateway: Gateway = sub.state.gateway
    gateway.on_session_end = on_session_end
    gateway.config.ui_proxy_root = SPARK_UI_ROOT  # the drivers' UIs behind the control plane
    return gateway, sub


def mount(app: FastAPI, sub: FastAPI) -> None:
    """The gateway's Livy API at /livy of the control plane."""
    app.mount(PREFIX, sub)
