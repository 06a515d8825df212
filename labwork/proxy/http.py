"""Forwarding one HTTP request, streamed both ways: the request body goes up as it arrives (large
uploads never sit in memory) and the answer comes back chunk by chunk, still encoded (gzip stays
gzip), so long polls, event streams and 100 MB downloads pass at the upstream's own pace."""
from __future__ import annotations

import httpx

from labwork.errors import Unavailable
from labwork.proxy.upstream import HeaderRules, Upstream

READ_BYTES = 1 << 20


def make_client() -> httpx.AsyncClient:
    """One pooled client per proxy: connections to upstreams are kept alive between requests.
    No read timeout: an event stream or a long poll may stay quiet as long as it likes.

    httpcore reads an answer at most 64 KiB per call; a download then costs a trip through the
    ASGI stack per 64 KiB. Up to 1 MiB per read (whatever has arrived; never a wait for more)
    lifts the proxied throughput of a 100 MB download from 0.29 to 0.46 of direct (bench/proxy.py,
    same run). httpcore has no option for it: its class attribute is raised (process-wide, and a
    larger upper bound changes nothing else); a version without it is left as it is."""
    try:
        from httpcore._async.http11 import AsyncHTTP11Connection
    except ImportError:  # pragma: no cover - another httpcore layout: its own read size stays
        AsyncHTTP11Connection = None
    if AsyncHTTP11Connection is not None and getattr(AsyncHTTP11Connection, "READ_NUM_BYTES", READ_BYTES) < READ_BYTES:
        AsyncHTTP11Connection.READ_NUM_BYTES = READ_BYTES
    return httpx.AsyncClient(timeout=httpx.Timeout(connect=10.0, read=None, write=None, pool=30.0),
                             limits=httpx.Limits(max_connections=200, max_keepalive_connections=40),
                             follow_redirects=False, trust_env=False)


async def forward_http(client: httpx.AsyncClient, scope, receive, send, up: Upstream,
                       rules: HeaderRules, *, scheme: str, host: str) -> None:
    client_addr = scope.get("client")
    headers = rules.request(scope["headers"], up, client=client_addr[0] if client_addr else None,
                            scheme=scheme, host=host)
    has_body = any(k in ("content-length", "transfer-encoding") for k, _ in
                   ((k.decode("latin-1").lower(), v) for k, v in scope["headers"]))
    request = client.build_request(scope["method"], up.url(scope.get("query_string", b"")),
                                   headers=headers, content=_body(receive) if has_body else None)
    try:
        answer = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise Unavailable(f"the {up.what} is not answering ({type(exc).__name__}: {exc})",
                          hint="it may have stopped; see its status and log on the dashboard") from None
    try:
        out = rules.response(answer.headers.raw, up, prefix_origin=f"{scheme}://{host}")
        await send({"type": "http.response.start", "status": answer.status_code, "headers": out})
        async for chunk in answer.aiter_raw():  # as the upstream sends them: no re-chunking copies
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except httpx.HTTPError:
        pass  # the upstream went away mid-answer: the browser sees a cut-off answer, as it would direct
    finally:
        await answer.aclose()


async def _body(receive):
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return
