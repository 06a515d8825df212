"""The Spark gateway as the dashboard reads it: its sessions and batches straight from the
`Gateway` (the same JSON its Livy API sends), and the Livy REST API called in-process (ASGI) for
what goes through its routes (logs, kill), so the pages act exactly as sparkmagic does."""
from __future__ import annotations

from typing import Any, Literal

import httpx
from fastapi import Request

from labwork.auth.identity import identity_of
from labwork.auth.members import sees_spark
from labwork.dashboard.web import dashboard_of
from labwork.errors import NotFound
from labwork.gateway.gateway import find

PREFIX = "/livy"


async def call(request: Request, method: str, path: str, *, params: dict[str, Any] | None = None,
               timeout: float = 30.0) -> tuple[int, Any]:
    """(status code, JSON body or None) of `METHOD /livy{path}` on this very app."""
    transport = httpx.ASGITransport(app=request.app)
    headers = {"Authorization": f"Bearer {dashboard_of(request).token}", "X-Requested-By": "labwork-dashboard"}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers,
                                 timeout=timeout) as client:
        r = await client.request(method, PREFIX + path, params=params)
    try:
        body = r.json()
    except ValueError:
        body = None
    return r.status_code, body


def listing(request: Request, what: Literal["sessions", "batches"], size: int = 200) -> list[dict[str, Any]]:
    """Every session (`what="sessions"`) or batch (`"batches"`) of the gateway, oldest first, as
    its API shows them (`to_json()`). Called on the event loop that owns the gateway."""
    dash = dashboard_of(request)
    table = dash.gateway.sessions if what == "sessions" else dash.gateway.batches
    user = identity_of(request).user
    items = [x for x in sorted(table.values(), key=lambda x: x.id)
             if sees_spark(dash.store, user, dict(x.req.conf or {}), x.owner, x.proxy_user)][:size]  # the caller's
    return [x.to_json() for x in items]


def check_visible(request: Request, what: Literal["sessions", "batches"], item_id: str) -> None:
    """404 for a session or batch the caller may not see (someone else's, or of a project they do not
    own), before the in-process call, which carries the dashboard's own token."""
    dash = dashboard_of(request)
    item = find(dash.gateway.sessions if what == "sessions" else dash.gateway.batches, item_id)
    if item is not None and not sees_spark(dash.store, identity_of(request).user, dict(item.req.conf or {}),
                                            item.owner, item.proxy_user):
        raise NotFound(f"{what[:-1].capitalize()} '{item_id}' not found.", where=what[:-1])


def project_sessions(sessions: list[dict[str, Any]], project_path: str) -> list[dict[str, Any]]:
    """Sessions a project's kernels started (their conf names the project folder)."""
    out = []
    for s in sessions:
        conf = s.get("conf") or {}
        if isinstance(conf, dict) and str(conf.get("spark.labwork.project") or "") == project_path:
            out.append(s)
    return out


def ui_url(item: dict[str, Any]) -> str | None:
    info = item.get("appInfo") or {}
    url = info.get("sparkUiUrl") if isinstance(info, dict) else None
    # the control plane's own /spark/<key>/ (a proxied UI), or a driver's address (a standalone gateway)
    return url if isinstance(url, str) and url.startswith(("http://", "https://", "/spark/")) else None
