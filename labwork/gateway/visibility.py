"""Which sessions and batches a caller may see: the gateway asks a `Visible` callback, given by
whoever mounts it (the control plane answers from the caller's project roles:
`labwork.server.livy_access`; the standalone gateway has none and shows everything).

One dependency of the whole Livy app (`guard`) checks every route that names a session or batch
(`{sid}`, `{bid}`): one the caller may not see is answered exactly like one that does not exist
(404 "Session 'N' not found."); lists show only the visible ones; a create whose conf names a
project the caller may not see is a 404 too.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Request

from labwork.gateway.gateway import Gateway, find
from labwork.gateway.protocol import LivyError

Visible = Callable[[Request, dict[str, Any]], bool]  # (request, the session's Spark conf) -> may see


def guard(gw: Gateway, visible: Visible | None):  # noqa: ANN201 - a FastAPI dependency
    async def check(request: Request) -> None:
        if visible is None:
            return
        params = request.path_params
        if "sid" in params:
            what, table, key = "Session", gw.sessions, params["sid"]
        elif "bid" in params:
            what, table, key = "Batch", gw.batches, params["bid"]
        else:
            return
        found = find(table, key)
        if found is not None and not await asyncio.to_thread(visible, request, dict(found.req.conf or {})):
            raise LivyError(404, f"{what} '{key}' not found.")
    return check


def only_visible(objects: Iterable[Any], request: Request, visible: Visible | None) -> list[Any]:
    items = list(objects)
    if visible is None:
        return items
    return [o for o in items if visible(request, dict(o.req.conf or {}))]


def check_create(request: Request, conf: dict[str, Any] | None, visible: Visible | None) -> None:
    if visible is not None and not visible(request, dict(conf or {})):
        raise LivyError(404, "Project not found: the session's spark.labwork.project names a project "
                             "you are not a member of.")
