"""`labwork serve`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def serve(host: Annotated[Optional[str], typer.Option(help="address to bind (default 127.0.0.1)")] = None,
          port: Annotated[Optional[int], typer.Option(help="port (default 8790; 0 = any free)")] = None,
          db: Annotated[Optional[str], typer.Option(help="SQLAlchemy URL, e.g. postgresql+psycopg://...")] = None,
          home: Annotated[Optional[Path], typer.Option(help="state folder (default LABWORK_HOME)")] = None,
          sample: Annotated[Optional[list[Path]], typer.Option(
              help="a sample project folder: copied once into LABWORK_HOME/samples and the copy registered "
                   "(the original stays untouched)")] = None,
          background: Annotated[bool, typer.Option("--background", hidden=True,
                                                   help="started by the CLI, output to a log: no token in it")] = False) -> None:
    """Run the control plane (API, dashboard, Spark gateway) in the foreground."""
    from labwork.server.daemon import serve as serve_control_plane
    from labwork.settings import load_settings
    serve_control_plane(load_settings(flags={"host": host, "port": port, "db": db, "home": home}),
                        samples=[str(p) for p in sample or []], print_token=not background)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
