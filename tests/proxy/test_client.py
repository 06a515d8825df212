"""The proxy's own HTTP/1.1 client (labwork/proxy/client.py), through the `Proxy` served by uvicorn
as the control plane serves it, in front of
* a real tornado server (the HTTP stack Jupyter servers run on): every framing of an answer
  (length, chunked, none for HEAD/204/304), uploads with a length and chunked, `Expect:
  100-continue`, kept-alive connections, and a browser that leaves an endless stream;
* a socket server that misbehaves on purpose, as a crashed or foreign upstream would: a body cut
  off, an answer that is not HTTP, interim 1xx answers, a body delimited by the connection's close,
  and a kept-alive connection its server closes on the next request (retried once, anew).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from labwork.proxy.app import Proxy
from labwork.proxy.upstream import Upstream
from tests.support import free_port, wait_for
from tests.support.asgi import proxy_app, serve_asgi

BLOB = os.urandom(3 << 20)


class Upstreams:
    """Where each path prefix of the proxy goes, and what the upstreams saw."""

    def __init__(self) -> None:
        self.tornado = ""
        self.raw = ""
        self.peers: list[int] = []  # the proxy's source port of each request tornado served
        self.stream_closed = threading.Event()
        self.expect_seen: list[str | None] = []
        self.raw_accepts = 0


def _tornado(state: Upstreams) -> Iterator[None]:
    import tornado.httpserver
    import tornado.ioloop
    import tornado.web

    class Blob(tornado.web.RequestHandler):
        def get(self) -> None:
            state.peers.append(self.request.connection.stream.socket.getpeername()[1])
            self.set_header("Content-Type", "application/octet-stream")
            self.write(BLOB)

        head = get

    class Chunked(tornado.web.RequestHandler):
        async def get(self) -> None:
            for i in range(64):
                self.write(BLOB[i * 4096:(i + 1) * 4096])
                await self.flush()  # flushed before the end: a chunked answer

    class Endless(tornado.web.RequestHandler):
        async def get(self) -> None:
            self.set_header("Content-Type", "text/event-stream")
            while not state.stream_closed.is_set():
                self.write("data: tick\n\n")
                try:
                    await self.flush()
                except tornado.iostream.StreamClosedError:
                    break
                await asyncio.sleep(0.05)

        def on_connection_close(self) -> None:
            state.stream_closed.set()

    class Echo(tornado.web.RequestHandler):
        def post(self) -> None:
            state.expect_seen.append(self.request.headers.get("Expect"))
            self.write({"length": len(self.request.body), "sha256": hashlib.sha256(self.request.body).hexdigest(),
                        "chunked": "chunked" in self.request.headers.get("Transfer-Encoding", "")})

        put = post

    class NoContent(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_status(204)

    class NotModified(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("ETag", '"v1"')
            self.set_status(304)

    ready = threading.Event()
    holder: dict = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = tornado.web.Application([("/t/blob", Blob), ("/t/chunked", Chunked), ("/t/endless", Endless),
                                       ("/t/echo", Echo), ("/t/204", NoContent), ("/t/304", NotModified)])
        port = free_port()
        server = tornado.httpserver.HTTPServer(app, max_body_size=64 << 20)
        server.listen(port, "127.0.0.1")
        holder.update(loop=loop, server=server)
        state.tornado = f"http://127.0.0.1:{port}"
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(30)
    try:
        yield
    finally:
        holder["loop"].call_soon_threadsafe(holder["loop"].stop)
        thread.join(10)


class _Raw(socketserver.BaseRequestHandler):
    """Answers by the path asked for, each in its own wrong (or unusual) way."""

    state: Upstreams

    def handle(self) -> None:
        self.state.raw_accepts += 1
        served = 0
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = self.request.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ", 2)[1].decode()
            if path == "/r/cut":
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
                return
            if path == "/r/garbage":
                self.request.sendall(b"this is not HTTP at all\r\n\r\n")
                return
            if path == "/r/interim":
                self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                                     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
                continue
            if path == "/r/until-close":
                self.request.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"y" * 100_000)
                return
            if path == "/r/once":  # keeps the connection, answers its first request, drops the second
                if served:
                    return
                served += 1
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce")
                continue
            self.request.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture(scope="module")
def proxy() -> Iterator[tuple[str, Upstreams]]:
    state = Upstreams()
    handler = type("Raw", (_Raw,), {"state": state})
    raw = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    raw.daemon_threads = True
    threading.Thread(target=raw.serve_forever, daemon=True).start()
    state.raw = f"http://127.0.0.1:{raw.server_address[1]}"

    async def resolve(scope) -> Upstream:
        path = scope["path"]
        return Upstream(origin=state.raw if path.startswith("/r/") else state.tornado, path=path, what="test upstream")

    app = proxy_app(t=Proxy(resolve), r=Proxy(resolve))
    gen = _tornado(state)
    next(gen)
    try:
        with serve_asgi(app) as url:
            yield url, state
    finally:
        raw.shutdown()
        raw.server_close()
        next(gen, None)


def test_every_framing_of_an_answer_passes_intact_on_kept_alive_connections(proxy) -> None:
    url, state = proxy
    with httpx.Client(base_url=url, timeout=60) as c:
        state.peers.clear()
        for _ in range(3):
            r = c.get("/t/blob")
            assert r.status_code == 200 and r.content == BLOB
            assert r.headers["content-length"] == str(len(BLOB))
        assert len(set(state.peers)) == 1, f"the proxy opened a connection per request: {state.peers}"
        head = c.head("/t/blob")
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(BLOB))
        assert c.get("/t/chunked").content == BLOB[:64 * 4096]
        assert c.get("/t/204").status_code == 204
        r = c.get("/t/304")
        assert r.status_code == 304 and r.headers["etag"] == '"v1"'
        # the same kept-alive connection served them all: each answer was framed where it ended
        assert c.get("/t/blob").content == BLOB
        assert len(set(state.peers)) == 1
        # one Date and one Server, the control plane's: the upstream's are not doubled
        assert len(r.headers.get_list("date")) == 1 and r.headers["server"] == "uvicorn"


def test_uploads_go_up_with_their_length_chunked_and_after_100_continue(proxy) -> None:
    url, state = proxy
    want = {"length": len(BLOB), "sha256": hashlib.sha256(BLOB).hexdigest()}
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/t/echo", content=BLOB)
        assert r.json() == {**want, "chunked": False}

        def pieces():
            for i in range(0, len(BLOB), 100_000):
                yield BLOB[i:i + 100_000]
        r = c.put("/t/echo", content=pieces())  # a body of unknown length: chunked both ways
        assert r.json() == {**want, "chunked": True}
        assert c.post("/t/echo").json()["length"] == 0
    # curl's way for a large upload: wait for "100 Continue" (uvicorn's own), then send the body
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(f"POST /t/echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(BLOB)}\r\n"
                  "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 100")
        s.sendall(BLOB)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and want["sha256"].encode() in answer
    assert state.expect_seen[-1] is None  # the proxy answered the Expect itself: it did not go up


def test_a_browser_that_leaves_an_endless_stream_ends_the_upstream_request(proxy) -> None:
    url, state = proxy
    state.stream_closed.clear()
    with httpx.Client(base_url=url, timeout=60) as c, c.stream("GET", "/t/endless") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines) == "data: tick"
    wait_for(state.stream_closed.is_set, timeout=60, what="tornado to see its stream's reader leave")


def test_upstreams_that_break_the_exchange(proxy) -> None:
    url, state = proxy
    with httpx.Client(base_url=url, timeout=60) as c:
        with pytest.raises(httpx.RemoteProtocolError):  # cut off: the browser sees it is incomplete
            c.get("/r/cut").read()
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.get("/r/garbage", headers={"Accept": "application/json"})
        assert r.status_code == 503
        assert "test upstream is not answering" in r.json()["msg"]
        assert "not valid HTTP" in r.json()["msg"]
        r = c.get("/r/interim")  # 100 and 103 are the proxy's to skip: the browser gets the answer
        assert (r.status_code, r.content) == (200, b"final")
        r = c.get("/r/until-close")
        assert (r.status_code, r.content) == (200, b"y" * 100_000)


def test_a_kept_alive_connection_its_server_drops_is_retried_once_anew(proxy) -> None:
    url, state = proxy
    with httpx.Client(base_url=url, timeout=60) as c:
        before = state.raw_accepts
        assert c.get("/r/once").content == b"once"
        time.sleep(0.2)  # the connection is back in the proxy's pool, still open
        assert c.get("/r/once").content == b"once"  # its server dropped it: a second connection answered
        assert state.raw_accepts - before == 2


def test_an_upstream_nobody_listens_on_is_a_clear_503() -> None:
    dead = f"http://127.0.0.1:{free_port()}"

    async def resolve(scope) -> Upstream:
        return Upstream(origin=dead, path=scope["path"], what="Jupyter server 'p' of alice")
    with serve_asgi(proxy_app(user=Proxy(resolve))) as url:
        r = httpx.get(f"{url}/user/alice/p/lab", headers={"Accept": "application/json"}, timeout=30)
    assert r.status_code == 503
    assert "Jupyter server 'p' of alice is not answering" in r.json()["msg"]
    assert "cannot connect" in r.json()["msg"]
