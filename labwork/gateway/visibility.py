"""Who a session belongs to and who may see it: the gateway asks a `LivyAccess`, given by whoever
mounts it (the control plane answers from its users and project roles:
`labwork.server.livy_access`; the standalone gateway has none: no owners checked, all visible).

One dependency of the whole Livy app (`guard`) checks every route that names a session or batch
(`{sid}`, `{bid}`): one the caller may not see is answered exactly like one that does not exist
(404 "Session 'N' not found."); lists show only the visible ones. A create (`check_create`)
whose conf names a project the caller is not a member of is a 404 too; one whose `proxyUser` (or
`?doAs=`) names anyone but the caller is a 403 unless the caller is an administrator (sparkmagic's
`%%configure` lets anyone write any proxyUser: its issues #470 and #495).
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

from fastapi import Request

from labwork.gateway.gateway import Gateway, find
from labwork.gateway.protocol import CreateRequest, LivyError
from labwork.spark_properties import USER_TAG


class LivyAccess(Protocol):
    """What the gateway asks of whoever mounts it about the caller of a request."""

    def caller(self, request: Request) -> str | None:
        """The name of the user the request acts as (the owner of what it creates)."""

    def is_admin(self, request: Request) -> bool:
        """Whether the caller may act as anyone (proxyUser) and see everything."""

    def sees(self, request: Request, conf: dict[str, Any], owner: str | None,
             proxy_user: str | None) -> bool:
        """Whether the caller may see and control a session or batch."""

    def may_create(self, request: Request, conf: dict[str, Any]) -> bool:
        """Whether the caller may create a session or batch with this conf (its project tag)."""


def _sees(access: LivyAccess, request: Request, item: Any) -> bool:  # noqa: ANN401 - Session or Batch
    return access.sees(request, dict(item.req.conf or {}), item.owner, item.proxy_user)


def guard(gw: Gateway, access: LivyAccess | None):  # noqa: ANN201 - a FastAPI dependency
    async def check(request: Request) -> None:
        if access is None:
            return
        params = request.path_params
        if "sid" in params:
            what, table, key = "Session", gw.sessions, params["sid"]
        elif "bid" in params:
            what, table, key = "Batch", gw.batches, params["bid"]
        else:
            return
        found = find(table, key)
        if found is not None and not await asyncio.to_thread(_sees, access, request, found):
            raise LivyError(404, f"{what} '{key}' not found.")
    return check


def only_visible(objects: Iterable[Any], request: Request, access: LivyAccess | None) -> list[Any]:
    items = list(objects)
    if access is None:
        return items
    return [o for o in items if _sees(access, request, o)]


def check_create(request: Request, req: CreateRequest, asked_users: Iterable[str | None],
                 access: LivyAccess | None, fallback_owner: str | None) -> str | None:
    """Check a create request and return its owner. With an access rule: the caller owns it, a
    proxyUser other than the caller is refused (403) unless the caller is an administrator, the
    proxyUser defaults to the caller, and the driver is told the user (`spark.labwork.user`, set
    by the gateway, never by the client). Without one (standalone): `fallback_owner`, as before."""
    if access is None:
        return fallback_owner
    owner = access.caller(request)
    others = sorted({u for u in asked_users if u and u != owner})
    if others and not access.is_admin(request):
        raise LivyError(403, f"proxyUser '{others[0]}' refused: you ({owner}) may only run Spark "
                             f"as yourself; only an administrator may name another user")
    if not access.may_create(request, dict(req.conf or {})):
        raise LivyError(404, "Project not found: the session's spark.labwork.project names a project "
                             "you are not a member of.")
    req.proxyUser = req.proxyUser or owner
    if req.proxyUser:
        req.conf = {**dict(req.conf or {}), USER_TAG: req.proxyUser}
    return owner
