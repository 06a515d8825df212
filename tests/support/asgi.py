"""`serve_asgi`: an ASGI app served by uvicorn in a thread of the test process, on a free port, as the control
plane serves its apps (httptools, websockets); `proxy_app`: the proxy engine mounted as the control plane mounts it."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.support.waiting import free_port, wait_for


@contextmanager
def serve_asgi(app) -> Iterator[str]:
    """Yields the app's base URL (`http://127.0.0.1:PORT`); stops the server on the way out."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="auto"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30, what="uvicorn")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def proxy_app(**mounts) -> Starlette:
    """A Starlette app with each `Proxy` mounted at `/<name>`, labwork's error boundary, and the
    proxies' pooled connections closed at shutdown (as the control plane's lifespan does)."""
    from labwork.http_errors import install as install_error_boundary

    @asynccontextmanager
    async def lifespan(_app):
        yield
        for proxy in mounts.values():
            await proxy.aclose()
    app = Starlette(routes=[Mount(f"/{name}", app=proxy) for name, proxy in mounts.items()], lifespan=lifespan)
    install_error_boundary(app)
    return app
