"""The proxy's HTTP/1.1 client to its upstreams (Jupyter servers and Spark UIs on 127.0.0.1).

Why not httpx here: a proxy only relays bytes, and httpx parses every byte of an answer in
Python (h11) and copies it three times on the way; a 100 MB download through the proxy ran at
0.46 of direct (bench/proxy.py). This client is a plain asyncio `Protocol`: the status line and
headers are parsed by `httptools` (llhttp, the parser uvicorn itself uses), a chunked body is
decoded by it too, and a body of known length is not touched at all: the bytes the event loop
received are handed on as they are, with the socket's own back-pressure in both directions.

    client = UpstreamClient()
    answer = await client.request("GET", "http://127.0.0.1:8888", "/api/status", headers, body=None)
    async for chunk in answer.body(): ...
    await answer.aclose()   # back to the pool when read to the end and reusable, else closed

Connections are kept alive per origin. One that its server closed while idle is noticed (its
end of stream arrives) and not reused; a request that finds its connection gone before any
answer byte is retried once on a new one, unless part of its body was already sent.
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

HIGH_WATER = 4 << 20  # bytes of answer held before reading from the upstream pauses
HEADER_LIMIT = 64 << 10
NO_BODY_STATUS = frozenset({204, 304})
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class UpstreamError(Exception):
    """The upstream could not be reached, or broke the exchange before its answer began."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; its answer body arrives through a bounded queue of chunks."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.busy = False
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._wakeup: asyncio.Future | None = None
        self._writable: asyncio.Future | None = None
        self._head = bytearray()
        self._head_done: asyncio.Future | None = None
        self._mode = "head"  # head, length, chunked, close, done
        self._left = 0
        self._parser: httptools.HttpResponseParser | None = None
        self._no_body = False
        self._paused = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = True
        self.error: str | None = None

    # --- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self._mode == "close":
            self._mode = "done"
        elif self._mode != "done" and self.busy:
            self.error = f"the connection closed ({exc or 'end of stream'})"
        self._wake()
        self._resume_writer()
        if self._head_done is not None and not self._head_done.done():
            self._head_done.set_exception(UpstreamError(self.error or "the connection closed"))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost does the rest

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._resume_writer()

    def data_received(self, data: bytes) -> None:
        if self._mode == "head":
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > HEADER_LIMIT:
                    self._fail("its answer's headers exceed 64 KiB")
                return
            block, rest = bytes(self._head[:end + 4]), bytes(self._head[end + 4:])
            self._head = bytearray()
            if not self._parse_head(block):
                return
            if self._mode == "head":  # a 1xx interim answer: the real one follows
                if rest:
                    self.data_received(rest)
                return
            if self._head_done is not None and not self._head_done.done():
                self._head_done.set_result(None)
            if rest:
                self._body(rest)
        elif self._mode == "done":
            if data.strip():
                self._fail("it sent bytes after its answer ended")
        else:
            self._body(data)

    # --- parsing -----------------------------------------------------------------------------
    def _parse_head(self, block: bytes) -> bool:
        headers: list[tuple[bytes, bytes]] = []
        callbacks = _HeadCallbacks(headers)
        parser = httptools.HttpResponseParser(callbacks)
        try:
            parser.feed_data(block)
        except httptools.HttpParserError as exc:
            self._fail(f"its answer is not valid HTTP ({exc})")
            return False
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return True  # 100 Continue, 103 Early Hints: not passed on
        self.status, self.headers = status, headers
        self.keep_alive = parser.should_keep_alive()
        names = {k.lower(): v for k, v in headers}
        if self._no_body or status in NO_BODY_STATUS or status == 101:
            self._mode = "done"
        elif b"chunked" in names.get(b"transfer-encoding", b"").lower():
            self._mode = "chunked"
            self._parser = parser  # it goes on with the body it has seen the headers of
            callbacks.connection = self
        elif b"content-length" in names:
            try:
                self._left = int(names[b"content-length"])
            except ValueError:
                self._fail("its Content-Length is not a number")
                return False
            self._mode = "length" if self._left > 0 else "done"
        else:
            self._mode = "close"
            self.keep_alive = False
        return True

    def _body(self, data: bytes) -> None:
        if self._mode == "length":
            if len(data) >= self._left:
                extra = data[self._left:]
                self._push(data[:self._left] if extra else data)
                self._left = 0
                self._mode = "done"
                if extra.strip():  # more than its Content-Length: the answer ends there, the connection too
                    self.keep_alive = False
            else:
                self._left -= len(data)
                self._push(data)
        elif self._mode == "chunked":
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserError as exc:
                self._fail(f"its chunked answer is not valid ({exc})")
        elif self._mode == "close":
            self._push(data)
        self._wake()

    def _push(self, chunk: bytes) -> None:
        if chunk:
            self._chunks.append(chunk)
            self._queued += len(chunk)
            if self._queued > HIGH_WATER and not self._paused and self.transport is not None and not self.closed:
                self._paused = True
                self.transport.pause_reading()

    def _fail(self, why: str) -> None:
        self.error = f"the {self.origin} upstream broke the exchange: {why}"
        self.keep_alive = False
        if self._head_done is not None and not self._head_done.done():
            self._head_done.set_exception(UpstreamError(self.error))
        self._wake()
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _resume_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # --- used by UpstreamClient / Answer -----------------------------------------------------
    def begin(self, no_body: bool) -> asyncio.Future:
        self.busy, self._no_body, self.error = True, no_body, None
        self._mode, self._chunks, self._queued = "head", deque(), 0
        self._head_done = asyncio.get_running_loop().create_future()
        return self._head_done

    async def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamError(self.error or "the connection closed")
        self.transport.write(data)
        if self._writable is not None and not self._writable.done():
            await self._writable

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._queued -= len(chunk)
                if self._paused and self._queued <= HIGH_WATER // 2 and not self.closed:
                    self._paused = False
                    self.transport.resume_reading()
                yield chunk
            if self._mode == "done" or self.error:
                return
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
            self._wakeup = None

    @property
    def reusable(self) -> bool:
        return (self._mode == "done" and not self.error and self.keep_alive and not self.closed
                and not self._chunks)

    def on_chunk(self, chunk: bytes) -> None:  # httptools' on_body while the body is chunked
        self._push(chunk)

    def on_end(self) -> None:  # httptools' on_message_complete
        if self._mode == "chunked":
            self._mode = "done"
            self._wake()


class _HeadCallbacks:
    """httptools' callbacks for one answer's head; a chunked body goes on to its connection."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers
        self.connection: _Connection | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        if self.connection is not None:
            self.connection.on_chunk(body)

    def on_message_complete(self) -> None:
        if self.connection is not None:
            self.connection.on_end()


class Answer:
    """An upstream's answer: `status`, raw `headers` (lower-case names), the body as it arrives."""

    def __init__(self, client: UpstreamClient, conn: _Connection) -> None:
        self._client, self._conn = client, conn
        self.status, self.headers = conn.status, conn.headers
        self._released = False

    def body(self) -> AsyncIterator[bytes]:
        return self._conn.chunks()

    @property
    def complete(self) -> bool:
        """The whole body arrived (False: the upstream broke off, or it is not read yet)."""
        return self._conn._mode == "done" and not self._conn.error

    def abort(self) -> None:
        """Stop reading (the browser went away): the connection is closed, never pooled."""
        if not self._released:
            self._conn.keep_alive = False
            if self._conn.transport is not None:
                self._conn.transport.close()

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._client._release(self._conn)


class UpstreamClient:
    """Pooled HTTP/1.1 connections to the proxy's upstreams (plain `http://` origins)."""

    def __init__(self, *, connect_timeout: float = 10.0, idle_per_origin: int = 16) -> None:
        self.connect_timeout = connect_timeout
        self.idle_per_origin = idle_per_origin
        self._idle: dict[str, list[_Connection]] = {}

    async def request(self, method: str, origin: str, target: str, headers: list[tuple[str, str]],
                      body: AsyncIterator[bytes] | None, length: int | None = None) -> Answer:
        """Send one request and wait for its answer's head. `body` with `length` goes up with a
        Content-Length, without one chunked. Raises `UpstreamError` when nothing answers."""
        host = urlsplit(origin).netloc
        if any(c in target for c in " \t\r\n"):
            raise UpstreamError(f"the request target {target[:80]!r} holds a space or a line break")
        lines = [f"{method} {target} HTTP/1.1", f"host: {host}"]
        for name, value in headers:
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise UpstreamError(f"the header {name!r} holds a line break")
            if name not in ("content-length", "host", "expect"):
                lines.append(f"{name}: {value}")
        if body is not None and length is not None:
            lines.append(f"content-length: {length}")
        elif body is not None:
            lines.append("transfer-encoding: chunked")
        elif method in METHODS_WITH_BODY:
            lines.append("content-length: 0")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        for attempt in (1, 2):
            conn, reused = await self._acquire(origin)
            head_done = conn.begin(no_body=method == "HEAD")
            sent_body = False
            try:
                await conn.write(head)
                if body is not None:
                    sent_body = True
                    async for piece in body:
                        if length is None:  # the browser's own body was chunked: so is ours
                            piece = b"%x\r\n%b\r\n" % (len(piece), piece) if piece else b""
                        await conn.write(piece)
                    if length is None:
                        await conn.write(b"0\r\n\r\n")
                await head_done
                return Answer(self, conn)
            except UpstreamError:
                self._discard(conn)
                if head_done.done() and not head_done.cancelled():
                    head_done.exception()  # retrieved: no "never retrieved" warning
                if attempt == 1 and reused and not sent_body:
                    continue  # its server had closed the kept-alive connection: once more, anew
                raise
            except BaseException:  # cancelled (the browser left), or anything else: never pooled
                self._discard(conn)
                raise
        raise AssertionError("unreachable")

    async def _acquire(self, origin: str) -> tuple[_Connection, bool]:
        idle = self._idle.get(origin, [])
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
        parts = urlsplit(origin)
        loop = asyncio.get_running_loop()
        conn = _Connection(origin)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: conn, parts.hostname, parts.port or 80),
                                   self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {origin} ({type(exc).__name__}: {exc})") from None
        return conn, False

    def _release(self, conn: _Connection) -> None:
        conn.busy = False
        if conn.reusable:
            idle = self._idle.setdefault(conn.origin, [])
            if len(idle) < self.idle_per_origin:
                idle.append(conn)
                return
        self._discard(conn)

    @staticmethod
    def _discard(conn: _Connection) -> None:
        conn.busy = False
        if conn.transport is not None and not conn.closed:
            conn.transport.close()
        conn.closed = True

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                self._discard(conn)
        self._idle.clear()
