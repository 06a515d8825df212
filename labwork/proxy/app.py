"""`Proxy`: the ASGI app mounted at a prefix (`/user`, `/spark`). It runs behind the control
plane's `AccessGuard`, so the caller is already known and a cross-site request already refused;
it asks its `Resolver` where this request goes (the resolver decides who may: someone else's
server is a 404) and forwards it. A resolver's `LabworkError` is raised before any byte is sent,
so the app's one error boundary answers it (a page, or JSON for `Accept: application/json`); a
websocket it refuses is closed with 1008 (policy) or 1011 (the upstream is not there)."""
from __future__ import annotations

from labwork.errors import LabworkError, NotFound, Unavailable
from labwork.proxy.client import UpstreamClient
from labwork.proxy.http import forward_http
from labwork.proxy.sockets import forward_websocket
from labwork.proxy.upstream import HeaderRules, Resolver


class Proxy:
    """Forwards every request under its mount to the `Upstream` its resolver names."""

    def __init__(self, resolve: Resolver, *, rules: HeaderRules | None = None) -> None:
        self.resolve = resolve
        self.rules = rules or HeaderRules()
        self._client: UpstreamClient | None = None

    @property
    def client(self) -> UpstreamClient:
        if self._client is None:
            self._client = UpstreamClient()
        return self._client

    async def aclose(self) -> None:
        """Close the pooled connections (the control plane's shut-down hook)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        host = _header(scope, b"host") or "127.0.0.1"
        if kind == "websocket":
            try:
                up = await self.resolve(scope)
            except NotFound:
                await send({"type": "websocket.close", "code": 1008})
                return
            except (Unavailable, LabworkError):
                await send({"type": "websocket.close", "code": 1011})
                return
            await forward_websocket(scope, receive, send, up, self.rules, scheme=scheme, host=host)
            return
        up = await self.resolve(scope)  # a LabworkError here is the app's error boundary's to answer
        await forward_http(self.client, scope, receive, send, up, self.rules, scheme=scheme, host=host)


def _header(scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None
