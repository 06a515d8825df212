"""Forwarding one websocket (kernels' channels, terminals, Spark UI has none): the browser's
side is accepted with the subprotocol the upstream chose, then frames are pumped both ways as they
come, text as text and bytes as bytes, until one side closes; its close code reaches the other."""
from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from labwork.proxy.upstream import HeaderRules, Upstream


async def forward_websocket(scope, receive, send, up: Upstream, rules: HeaderRules, *,
                            scheme: str, host: str) -> None:
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    client_addr = scope.get("client")
    headers = [(k, v) for k, v in rules.request(scope["headers"], up, client=client_addr[0] if client_addr else None,
                                                scheme=scheme, host=host)
               if k not in ("sec-websocket-protocol", "sec-websocket-extensions")]
    url = "ws" + up.url(scope)[4:]  # http://… -> ws://…
    try:
        upstream = await connect(url, additional_headers=headers, subprotocols=scope.get("subprotocols") or None,
                                 compression=None, max_size=None, open_timeout=20, ping_interval=None,
                                 user_agent_header=None)
    except (OSError, InvalidStatus, WebSocketException, asyncio.TimeoutError):
        await send({"type": "websocket.close", "code": 1011, "reason": f"the {up.what} refused the connection"[:120]})
        return
    await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
    down_closed: list[int] = []

    async def browser_to_upstream() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                down_closed.append(message.get("code", 1000))
                await upstream.close(code=_sendable(message.get("code", 1000)))
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    async def upstream_to_browser() -> None:
        try:
            async for frame in upstream:
                if isinstance(frame, str):
                    await send({"type": "websocket.send", "text": frame})
                else:
                    await send({"type": "websocket.send", "bytes": frame})
        except ConnectionClosed:
            pass
        if not down_closed:
            code = upstream.close_code or 1000
            await send({"type": "websocket.close", "code": _sendable(code), "reason": upstream.close_reason or ""})

    tasks = [asyncio.ensure_future(browser_to_upstream()), asyncio.ensure_future(upstream_to_browser())]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[0] in done and not tasks[0].exception():
            await asyncio.wait(pending, timeout=5)  # the upstream's closing handshake
    finally:
        for t in tasks:
            t.cancel()
        await upstream.close()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, ConnectionClosed, OSError, RuntimeError):
                pass


def _sendable(code: int) -> int:
    """1005/1006/1015 are never sent on the wire: a lost connection is reported as 1011."""
    return 1011 if code in (1005, 1006, 1015) else code
