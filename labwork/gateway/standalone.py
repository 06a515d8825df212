"""`labwork gateway serve`: the gateway alone, without the control plane.

Secure by default: a token is required (made once, 0600, in the state folder's `token` file, and
printed at start as `labwork serve` does), sent as a bearer token or as the HTTP Basic password
(any user name: it is the Livy user), and Livy's `X-Requested-By` check is on (sparkmagic sends the
header labwork's kernels configure; the `livy` client needs it set on its `requests_session`).
`--no-auth` turns the token off, with a warning; `[gateway] csrf_protection = false` turns the
header check off. Requests from another site are refused either way.
"""
from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from fastapi import Request

from labwork.access import presented_secret, same_secret
from labwork.private import private_dir, write_private
from labwork.settings import GatewaySettings, Settings

TOKEN_FILE = "token"


def load_or_create_gateway_token(state_dir: Path) -> str:
    """The standalone gateway's token, in `state_dir/token` (0600; kept across restarts)."""
    path = private_dir(state_dir) / TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if token:
            path.chmod(0o600)
            return token
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


def token_check(token: str) -> Callable[[Request], bool]:
    """An `authenticate` callback for `create_gateway_app`: bearer token or Basic password."""
    def authenticate(request: Request) -> bool:
        secret, _user, _present = presented_secret(request.headers)
        return same_secret(secret, token)
    return authenticate


def standalone_settings(gs: GatewaySettings) -> GatewaySettings:
    """Livy's X-Requested-By check is on unless the settings say otherwise explicitly."""
    if "csrf_protection" in gs.model_fields_set:
        return gs
    return gs.model_copy(update={"csrf_protection": True})


def serve(settings: Settings, *, host: str | None = None, port: int | None = None,
          master: str | None = None, state_dir: Path | None = None, auth: bool = True) -> None:
    """Run the Livy gateway in the foreground until Ctrl-C / SIGTERM (which end every driver)."""
    import uvicorn

    from labwork.gateway.app import create_gateway_app
    gs = settings.gateway.model_copy(update={k: v for k, v in
                                             {"host": host, "port": port, "master": master}.items()
                                             if v is not None})
    gs = standalone_settings(gs)
    state = state_dir or settings.home / "gateway-standalone"
    private_dir(state)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = load_or_create_gateway_token(state) if auth else None
    authenticate = token_check(token) if token else None
    app = create_gateway_app(gs, state_dir=state, authenticate=authenticate)
    config = uvicorn.Config(app, host=gs.host, port=gs.port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    print(f"labwork Spark gateway (Livy) on http://{gs.host}:{gs.port}  master={gs.master}  "
          f"state={state}", file=sys.stderr, flush=True)
    if token:
        print(f"  token required: {token}  (also in {state / TOKEN_FILE}; "
              "send it as a bearer token or as the HTTP Basic password)", file=sys.stderr, flush=True)
    elif gs.auth_user:
        print(f"  --no-auth: only [gateway] auth_user '{gs.auth_user}' and its password are accepted",
              file=sys.stderr, flush=True)
    else:
        print("  WARNING: --no-auth: anyone who can reach this port can run code as this user",
              file=sys.stderr, flush=True)
    if gs.csrf_protection:
        print("  requests that change state need an X-Requested-By header (Livy's CSRF check)",
              file=sys.stderr, flush=True)
    server.run()


class ThreadedGateway:
    """The gateway served by uvicorn in a background thread of this process, on a free port
    (benchmarks and embedding). `with ThreadedGateway(settings, state_dir) as gw: gw.url`.
    Open unless `authenticate=` (e.g. `token_check(token)`) or `[gateway] auth_user` says
    otherwise; the settings' `csrf_protection` is used as given."""

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
