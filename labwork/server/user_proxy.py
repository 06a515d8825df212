"""Users' Jupyter servers behind the control plane's one origin: `/user/<name>/<project>/…`.

The control plane starts each user's server with that prefix as its base_url
(labwork/notebooks/rows.py `proxy_prefix`), so a browser that can reach only the control plane's
port opens JupyterLab there: HTTP and websockets (kernels, terminals, events) go through the proxy
engine (labwork/proxy), which adds the server's token to each request it forwards (the browser
never holds it; labwork's extension blanks it in the pages) and keeps labwork's session cookie and
credentials from the server.

Who gets in: the server's own user, while a member of its project; the `AccessGuard` in front has
already found them by their labwork session (or token) and refused cross-site requests. Anyone
else, administrators included (as JupyterHub's default), gets the 404 of a server that does not
exist; the owners and administrators see and stop others' servers through the API and dashboard
(labwork/server/server_access.py), not by opening them.
"""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from labwork.auth.identity import STATE_KEY, Identity
from labwork.auth.members import role_of
from labwork.auth.users import UserRef
from labwork.errors import NotFound, Unavailable
from labwork.notebooks.rows import PROXY_ROOT, proxy_path
from labwork.proxy.app import Proxy
from labwork.proxy.upstream import Upstream
from labwork.store.db import Store
from labwork.store.tables import ServerRow

# Jupyter's own login cookie (`username-127-0-0-1-<port>`) would let a browser past the proxy.
JUPYTER_COOKIES = ("username-",)


class UserServers:
    """The resolver of `/user/…` requests (`Resolver` of labwork/proxy/upstream.py)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def __call__(self, scope: dict[str, Any]) -> Upstream:
        identity: Identity = scope.get("state", {}).get(STATE_KEY) or Identity()
        path = scope["path"]
        segments = path.split("/", 4)  # "", "user", name, project, rest
        if len(segments) < 4 or not segments[2] or not segments[3] or identity.user is None:
            raise NotFound(f"no Jupyter server at '{path[:200]}'", where="path",
                           hint="open your server from the project's Jupyter page")
        prefix = f"{PROXY_ROOT}/{segments[2]}/{segments[3]}"
        row = await asyncio.to_thread(self.running, identity.user, segments[2], prefix)
        upstream_path = path if len(segments) == 5 else prefix + "/"  # the server's root is its base_url
        return Upstream(origin=f"http://127.0.0.1:{row['port']}", path=upstream_path,
                        headers=(("authorization", f"token {row['token']}"),), drop_cookies=JUPYTER_COOKIES,
                        what=f"Jupyter server of {segments[2]} for project '{segments[3]}'")

    def running(self, caller: UserRef, name: str, prefix: str) -> dict[str, Any]:
        """The caller's active server proxied at `prefix`: its port and token; NotFound for
        someone else's (or none), Unavailable for one that is starting or stopping."""
        missing = NotFound(f"no Jupyter server at '{prefix[:200]}/'", where="path",
                           hint="start yours from the project's Jupyter page",
                           hints={"dashboard": "start yours from the project's Jupyter page"})
        if name != caller.name:
            raise missing
        with self.store.session() as s:
            rows = s.scalars(select(ServerRow).where(ServerRow.user_id == caller.id,
                                                     ServerRow.state.in_(("starting", "running", "stopping")))).all()
            row = next((r for r in rows if proxy_path(r) == prefix), None)
            found = None if row is None else {"port": row.port, "token": row.token, "state": row.state,
                                              "project_id": row.project_id}
        if found is None or role_of(self.store, caller, found["project_id"]) is None:
            raise missing
        if found["state"] != "running" or not found["port"]:
            raise Unavailable(f"your Jupyter server at '{prefix}/' is {found['state']}",
                              hint="try again in a moment")
        return found


def mount_user_servers(app: FastAPI, store: Store) -> Proxy:
    """Mount the proxy of users' servers at /user; the caller closes it at shut-down (`aclose`)."""
    proxy = Proxy(UserServers(store))
    app.mount(PROXY_ROOT, proxy)
    return proxy
