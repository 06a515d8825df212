"""`labwork spark` commands."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from labwork.cli.output import console, print_json, print_table

app = typer.Typer(no_args_is_help=True)

URL_HELP = "a standalone gateway's URL (default: the control plane's /livy)"


@app.command("sessions")
def sessions(url: Annotated[Optional[str], typer.Option(help=URL_HELP)] = None,
             json_out: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """List the gateway's Spark sessions."""
    from labwork.gateway.client import list_sessions
    items = list_sessions(url=url)
    if json_out:
        print_json(items)
        return
    if not items:
        console.print("no Spark sessions")
        return
    print_table(["id", "name", "kind", "state", "app id", "Spark UI"],
                [[s.get("id"), s.get("name"), s.get("kind"), s.get("state"), s.get("appId"),
                  (s.get("appInfo") or {}).get("sparkUiUrl")] for s in items])


@app.command("kill")
def kill(session: Annotated[str, typer.Argument(help="session id or name")],
         url: Annotated[Optional[str], typer.Option(help=URL_HELP)] = None) -> None:
    """Delete a Spark session (its driver ends)."""
    from labwork.gateway.client import kill_session
    kill_session(session, url=url)
    console.print(f"deleted Spark session {session}")
