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
