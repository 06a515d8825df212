"""`labwork gateway` commands."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


app = typer.Typer(no_args_is_help=True)


@app.command("serve")
def serve(host: Annotated[Optional[str], typer.Option(help="address to bind (default 127.0.0.1)")] = None,
          port: Annotated[Optional[int], typer.Option(help="port (default 8998)")] = None,
          master: Annotated[Optional[str], typer.Option(help="Spark master: local[*], spark://…, yarn, k8s://…")] = None,
          state_dir: Annotated[Optional[Path], typer.Option(help="where sessions and the token are kept (default LABWORK_HOME/gateway-standalone)")] = None,
          no_auth: Annotated[bool, typer.Option("--no-auth", help="serve without a token (prints a warning)")] = False) -> None:
    """Run the Livy-compatible Spark gateway alone, in the foreground; a token is required
    (printed at start, kept in STATE_DIR/token) unless --no-auth."""
    from labwork.settings import load_settings
    from labwork.gateway.standalone import serve as serve_gateway
    serve_gateway(load_settings(), host=host, port=port, master=master, state_dir=state_dir,
                  auth=not no_auth)
