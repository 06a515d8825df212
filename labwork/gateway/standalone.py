"""`labwork gateway serve`: the gateway alone, without the control plane."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from labwork.settings import Settings


def serve(settings: Settings, *, host: str | None = None, port: int | None = None,
          master: str | None = None, state_dir: Path | None = None) -> None:
    """Run the Livy gateway in the foreground until Ctrl-C / SIGTERM (which end every driver)."""
    import uvicorn

    from labwork.gateway.app import create_gateway_app
    gs = settings.gateway.model_copy(update={k: v for k, v in
                                             {"host": host, "port": port, "master": master}.items()
                                             if v is not None})
    state = state_dir or settings.home / "gateway-standalone"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_gateway_app(gs, state_dir=state)
    config = uvicorn.Config(app, host=gs.host, port=gs.port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    print(f"labwork Spark gateway (Livy) on http://{gs.host}:{gs.port}  master={gs.master}  "
          f"state={state}", file=sys.stderr, flush=True)
    server.run()


class ThreadedGateway:
    """The gateway served by uvicorn in a background thread of this process, on a free port
    (benchmarks and embedding). `with ThreadedGateway(settings, state_dir) as gw: gw.url`."""

    def __init__(self, gateway_settings, state_dir: Path, **kw) -> None:
        import socket

        import uvicorn

        from labwork.gateway.app import create_gateway_app
        self.app = create_gateway_app(gateway_settings, state_dir=state_dir, **kw)
        self.gateway = self.app.state.gateway
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        import threading
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ThreadedGateway":
        import time
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(120)
