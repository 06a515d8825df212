"""Forwarding one HTTP request, streamed both ways: the request body goes up as it arrives (large
uploads never sit in memory) and the answer comes back chunk by chunk, still encoded (gzip stays
gzip), so long polls, event streams and 100 MB downloads pass at the upstream's own pace. A browser
that leaves mid-answer ends the upstream request too (an endless event stream is not read on for
nobody). The client that talks to upstreams is labwork/proxy/client.py."""
from __future__ import annotations

import asyncio

from labwork.errors import Unavailable
from labwork.proxy.client import UpstreamClient, UpstreamError
from labwork.proxy.upstream import HeaderRules, Upstream


async def forward_http(client: UpstreamClient, scope, receive, send, up: Upstream,
                       rules: HeaderRules, *, scheme: str, host: str) -> None:
    client_addr = scope.get("client")
    headers = rules.request(scope["headers"], up, client=client_addr[0] if client_addr else None,
                            scheme=scheme, host=host)
    length, chunked = _framing(scope["headers"])
    body = _body(receive) if chunked or length else None
    try:
        answer = await client.request(scope["method"], up.origin, up.target(scope), headers, body,
                                      None if chunked else length)
    except UpstreamError as exc:
        raise Unavailable(f"the {up.what} is not answering ({exc})",
                          hint="it may have stopped; see its status and log on the dashboard") from None
    gone = asyncio.ensure_future(_disconnected(receive))
    gone.add_done_callback(lambda task: None if task.cancelled() else (task.exception(), answer.abort()))
    try:
        out = rules.response(answer.headers, up, prefix_origin=f"{scheme}://{host}")
        await send({"type": "http.response.start", "status": answer.status, "headers": out})
        async for chunk in answer.body():  # as the upstream sent them: no re-chunking copies
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        gone.cancel()
        if answer.complete:  # else the upstream broke off: the browser sees a cut-off answer, as direct
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        gone.cancel()
        await answer.aclose()


def _framing(raw) -> tuple[int | None, bool]:
    """The request's Content-Length (None without one) and whether its body is chunked."""
    length, chunked = None, False
    for k, v in raw:
        if k.lower() == b"content-length":
            length = int(v)  # uvicorn has refused a request whose length is not a number
        elif k.lower() == b"transfer-encoding":
            chunked = True
    return length, chunked


async def _disconnected(receive) -> None:
    """Returns when the browser is gone (after the request body, `receive` waits for that)."""
    while (await receive())["type"] != "http.disconnect":
        pass


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
