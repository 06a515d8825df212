"""`labwork user add | list | remove | passwd`: users of the control plane (administrators manage
them; everyone may change their own password). Thin: each is one call of /api/users."""
from __future__ import annotations

import sys
from typing import Annotated

import typer

from labwork.errors import InvalidRequest

app = typer.Typer(no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
StdinOpt = Annotated[bool, typer.Option("--password-stdin", help="read the password from standard input "
                                        "(one line), not from a prompt")]


def _client():  # noqa: ANN202
    from labwork.server.client import connect
    return connect()


def read_password(from_stdin: bool, *, required: bool) -> str | None:
    """The password from stdin's first line, a hidden prompt (asked twice) at a terminal, else None
    (`required`: an error)."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidRequest("no password on standard input", where="--password-stdin")
        return line
    if sys.stdin.isatty():
        import getpass
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            raise InvalidRequest("the two passwords differ", where="password")
        return first
    if required:
        raise InvalidRequest("no password given", where="password", hint="pass it with --password-stdin")
    return None


@app.command("add")
def add(name: Annotated[str, typer.Argument(help="user name (a-z, 0-9, '_', '.', '-')")],
        admin: Annotated[bool, typer.Option("--admin", help="an administrator: sees every project, manages users")] = False,
        password_stdin: StdinOpt = False, json: JsonOpt = False) -> None:
    """Add a user. Without a password (no terminal, no --password-stdin) they log in only through a
    trusted proxy or with personal tokens, until `labwork user passwd` sets one."""
    from labwork.cli.output import console, print_json
    user = _client().request("POST", "/api/users", json={
        "name": name, "admin": admin, "password": read_password(password_stdin, required=False)})
    if json:
        print_json(user)
        return
    console.print(f"added user {user['name']}{' (administrator)' if user['admin'] else ''}"
                  f"{'' if user['password'] else ' without a password'}")


@app.command("list")
def list_(json: JsonOpt = False) -> None:
    """The users (an administrator sees all; others themselves)."""
    from labwork.cli.output import print_json, print_table
    users = _client().request("GET", "/api/users")
    if json:
        print_json(users)
        return
    print_table(["name", "admin", "password", "created"],
                [[u["name"], "yes" if u["admin"] else "", "set" if u["password"] else "—", u["created_at"]]
                 for u in users])


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="user name")], json: JsonOpt = False) -> None:
    """Remove a user with their tokens, log-in sessions and project memberships."""
    from labwork.cli.output import console, print_json
    user = _client().request("DELETE", f"/api/users/{_quote(name)}")
    if json:
        print_json(user)
        return
    console.print(f"removed user {user['name']}")


@app.command("passwd")
def passwd(name: Annotated[str, typer.Argument(help="user name")], password_stdin: StdinOpt = False) -> None:
    """Set a user's password (yours, or anyone's for an administrator); their log-in sessions end."""
    from labwork.cli.output import console
    user = _client().request("PUT", f"/api/users/{_quote(name)}/password",
                             json={"password": read_password(password_stdin, required=True)})
    console.print(f"password of {user['name']} set")


def _quote(name: str) -> str:
    from urllib.parse import quote
    return quote(name, safe="")
