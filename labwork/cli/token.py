"""`labwork token create | list | revoke`: personal API tokens (shown once, stored as hashes).
Thin: each is one call of /api/tokens."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

app = typer.Typer(no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _client():  # noqa: ANN202
    from labwork.server.client import connect
    return connect()


@app.command("create")
def create(user: Annotated[Optional[str], typer.Option("--user", help="whose token (administrators only; "
                                                        "default: yours)")] = None,
           name: Annotated[str, typer.Option("--name", help="what it is for, to tell tokens apart")] = "token",
           expires: Annotated[str, typer.Option("--expires", help="lifetime: 30d, 12h, 2w or never")] = "30d",
           json: JsonOpt = False) -> None:
    """Make a personal token and print it: this is the only time it is shown."""
    from labwork.cli.output import print_json
    token = _client().request("POST", "/api/tokens", json={"user": user, "name": name, "expires": expires})
    if json:
        print_json(token)
        return
    print(token["token"])  # alone on stdout, for `TOKEN=$(labwork token create)`
    _say(f"token {token['id']} '{token['name']}' of {token['user']}, expires "
         f"{token['expires_at'] or 'never'}; it is not shown again")


def _say(text: str) -> None:
    from labwork.cli.output import err_console
    err_console.print(text)


@app.command("list")
def list_(all: Annotated[bool, typer.Option("--all", help="every user's tokens (administrators)")] = False,
          json: JsonOpt = False) -> None:
    """Your tokens (never the tokens themselves: their id, name, first characters and expiry)."""
    from labwork.cli.output import print_json, print_table
    tokens = _client().request("GET", "/api/tokens", params={"all": all})
    if json:
        print_json(tokens)
        return
    print_table(["id", "user", "name", "starts", "created", "expires"],
                [[t["id"], t["user"], t["name"], t["prefix"] + "…", t["created_at"],
                  ("expired " if t["expired"] else "") + (t["expires_at"] or "never")] for t in tokens])


@app.command("revoke")
def revoke(token_id: Annotated[int, typer.Argument(help="the token's id (labwork token list)")],
           json: JsonOpt = False) -> None:
    """Revoke a token: it stops working at once."""
    from labwork.cli.output import console, print_json
    token = _client().request("DELETE", f"/api/tokens/{token_id}")
    if json:
        print_json(token)
        return
    console.print(f"revoked token {token['id']} '{token['name']}' of {token['user']}")
