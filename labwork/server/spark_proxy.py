"""Spark UIs behind the control plane's one origin: `/spark/<key>/…`.

Every Spark driver labwork starts writes its UI's links under `/spark/<key>` (its
`spark.ui.proxyBase`) and serves them at its own root, so a browser that reaches only the control
plane's port opens the UI of a session whose driver listens on 127.0.0.1:<some port>. `<key>` is

* a gateway driver's folder name (`session-3-1a2b3c4d`, `pool-…`): the Livy session's
  `appInfo.sparkUiUrl` is `/spark/<key>/` (labwork/gateway/sessions.py `Session.ui_url`);
* `kernel-<kernel id>` for a local PySpark kernel's driver, which reports its UI to
  `POST /api/kernels/{id}/spark` (labwork/kernels/spark_startup.py); the dashboard links it.

Who may open one: the session's owner (a gateway session's owner or proxyUser; a kernel's, the
user whose server runs it), the project's owners and administrators — the rule of
`labwork.auth.members.sees_spark`. To anyone else, and for a key with no live driver, the UI does
not exist (404).
"""
from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from sqlalchemy import select

from labwork.auth.identity import STATE_KEY, Identity
from labwork.auth.members import OWNER, role_of, sees_spark
from labwork.auth.users import UserRef
from labwork.errors import NotFound
from labwork.gateway.gateway import Gateway
from labwork.proxy.app import Proxy
from labwork.proxy.upstream import Upstream
from labwork.spark_properties import SPARK_UI_ROOT
from labwork.store.db import Store
from labwork.store.tables import KernelLaunchRow, ServerRow

KERNEL_PREFIX = "kernel-"


class SparkUis:
    """The resolver of `/spark/…` requests (`Resolver` of labwork/proxy/upstream.py)."""

    def __init__(self, store: Store, gateway: Gateway | None) -> None:
        self.store = store
        self.gateway = gateway

    async def __call__(self, scope: dict[str, Any]) -> Upstream:
        identity: Identity = scope.get("state", {}).get(STATE_KEY) or Identity()
        path = scope["path"]
        segments = path.split("/", 3)  # "", "spark", key, rest
        key = segments[2] if len(segments) > 2 else ""
        if not key or identity.user is None:
            raise _missing(path)
        if key.startswith(KERNEL_PREFIX):
            origin = await asyncio.to_thread(self._kernel_ui, identity.user, key)
        else:
            origin = self._gateway_ui(identity.user, key)
        if origin is None:
            raise _missing(path)
        prefix = f"{SPARK_UI_ROOT}/{key}"
        rest = "/" + segments[3] if len(segments) > 3 else "/"
        return Upstream(origin=origin, path=rest, location_prefix=prefix, what=f"Spark UI {key}")

    def _gateway_ui(self, user: UserRef, key: str) -> str | None:
        session = self.gateway.session_by_ui_key(key) if self.gateway is not None else None
        if session is None or not sees_spark(self.store, user, session.req.conf, session.owner,
                                             session.proxy_user):
            return None
        return _origin(session.spark_ui)

    def _kernel_ui(self, user: UserRef, key: str) -> str | None:
        kernel_id = key[len(KERNEL_PREFIX):]
        with self.store.session() as s:
            row = s.scalars(select(KernelLaunchRow).where(KernelLaunchRow.kernel_id == kernel_id)
                            .order_by(KernelLaunchRow.id.desc()).limit(1)).first()
            if row is None or row.spark_ui_proxy != f"{SPARK_UI_ROOT}/{key}" or not row.spark_ui_url:
                return None
            server = s.get(ServerRow, row.server_id) if row.server_id is not None else None
            owner_id = server.user_id if server is not None else None
            # a kernel of no labwork server (a job's, one started by hand) is its project owners'
            live = server is None or server.state == "running"
            url, project_id = row.spark_ui_url, row.project_id
        if not live:  # the kernel's server stopped: so did its driver
            return None
        if not (user.admin or user.id == owner_id or role_of(self.store, user, project_id) == OWNER):
            return None
        return _origin(url)


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parsed = urlsplit(url)
    return f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme in ("http", "https") and parsed.netloc else None


def _missing(path: str) -> NotFound:
    return NotFound(f"no Spark UI at '{path[:200]}'", where="path",
                    hint="open it from the project's Spark sessions or the kernel's link",
                    hints={"dashboard": "the project's Jupyter page links the Spark UI of each session"})


def mount_spark_uis(app: FastAPI, store: Store, gateway: Gateway | None) -> Proxy:
    """Mount the proxy of Spark UIs at /spark; the caller closes it at shut-down (`aclose`)."""
    proxy = Proxy(SparkUis(store, gateway))
    app.mount(SPARK_UI_ROOT, proxy)
    return proxy
