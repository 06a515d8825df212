"""The Spark gateway as the dashboard reads it: its Livy REST API called in-process (ASGI), so the
pages see exactly what sparkmagic sees, whatever object the gateway keeps in `ctx.parts`."""
from __future__ import annotations

from typing import Any

import httpx
from fastapi import Request

PREFIX = "/livy"


class GatewayMissing(Exception):
    pass


async def call(request: Request, method: str, path: str, *, params: dict[str, Any] | None = None,
               timeout: float = 30.0) -> tuple[int, Any]:
    """(status code, JSON body or None) of `METHOD /livy{path}` on this very app."""
    ctx = request.app.state.ctx
    transport = httpx.ASGITransport(app=request.app)
    headers = {"Authorization": f"Bearer {ctx.token}", "X-Requested-By": "labwork-dashboard"}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers,
                                 timeout=timeout) as client:
        r = await client.request(method, PREFIX + path, params=params)
    try:
        body = r.json()
    except ValueError:
        body = None
    return r.status_code, body


async def listing(request: Request, what: str, size: int = 200) -> list[dict[str, Any]]:
    """Every session (`what="sessions"`) or batch (`"batches"`); GatewayMissing when there is no gateway.

    The gateway object's own table (`ctx.parts["gateway"].sessions` / `.batches`, items with
    `to_json()`, the same JSON its API sends) is read directly when it has one, on the event loop
    that owns it; otherwise the REST API answers in-process."""
    gateway = request.app.state.ctx.parts.get("gateway")
    table = getattr(gateway, what, None)
    if isinstance(table, dict) and all(hasattr(x, "to_json") for x in table.values()):
        items = sorted(table.values(), key=lambda x: getattr(x, "id", 0))[:size]
        return [x.to_json() for x in items]
    code, body = await call(request, "GET", f"/{what}", params={"from": 0, "size": size})
    if code == 404 or not isinstance(body, dict) or "sessions" not in body:
        raise GatewayMissing(f"GET {PREFIX}/{what} answered {code}")
    items = body.get("sessions") or []
    return [s for s in items if isinstance(s, dict)]


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
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None
