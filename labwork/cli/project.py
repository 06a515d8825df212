"""`labwork init` and `labwork project members ...`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from labwork.cli.output import console


def init(folder: Annotated[Optional[Path], typer.Argument(help="project folder (default: here)")] = None,
         name: Annotated[Optional[str], typer.Option("--name", help="project name (default: folder name)")] = None,
         register: Annotated[bool, typer.Option("--register/--no-register",
                                                help="register with the control plane")] = True) -> None:
    """Make FOLDER a labwork project with a `local` compute target and run configuration."""
    from labwork.project import init_project
    from labwork.server.client import connect
    project = init_project(folder, name)
    console.print(f"initialised project [bold]{project.name}[/] in {project.root}")
    if register:
        connect().request("POST", "/api/projects", json={"path": str(project.root)})
        console.print("registered with the control plane")


def register(app: typer.Typer) -> None:
    app.command("init")(init)


# -- `labwork project members add | remove | list` --------------------------------------------------

app = typer.Typer(no_args_is_help=True)
members_app = typer.Typer(no_args_is_help=True, help="Who may use a project: owners and members.")
app.add_typer(members_app, name="members")

ProjectArg = Annotated[str, typer.Argument(help="the project: its name, id or folder")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _members_path(client, project: str) -> str:  # noqa: ANN001 - a ControlClient
    """The project's members URL; a folder is named by its id (a path cannot be one URL segment)."""
    from urllib.parse import quote
    if "/" in project or project in (".", ".."):
        project = str(client.request("POST", "/api/projects", json={"path": str(Path(project).resolve())})["id"])
    return f"/api/projects/{quote(project, safe='')}/members"


@members_app.command("list")
def members_list(project: ProjectArg, json: JsonOpt = False) -> None:
    """The project's members and their roles."""
    from labwork.cli.output import print_json, print_table
    from labwork.server.client import connect
    client = connect()
    members = client.request("GET", _members_path(client, project))
    if json:
        print_json(members)
        return
    print_table(["user", "role"], [[m["user"], m["role"]] for m in members])


@members_app.command("add")
def members_add(project: ProjectArg, user: Annotated[str, typer.Argument(help="user name")],
                role: Annotated[str, typer.Option("--role", help="owner or member")] = "member",
                json: JsonOpt = False) -> None:
    """Add a user to the project (or change their role); owners only."""
    from labwork.cli.output import print_json
    from labwork.server.client import connect
    client = connect()
    member = client.request("POST", _members_path(client, project), json={"user": user, "role": role})
    if json:
        print_json(member)
        return
    console.print(f"{member['user']} is now {member['role']} of {project}")


@members_app.command("remove")
def members_remove(project: ProjectArg, user: Annotated[str, typer.Argument(help="user name")],
                   json: JsonOpt = False) -> None:
    """Remove a user from the project; owners only (a project keeps one owner)."""
    from urllib.parse import quote

    from labwork.cli.output import print_json
    from labwork.server.client import connect
    client = connect()
    member = client.request("DELETE", _members_path(client, project) + "/" + quote(user, safe=""))
    if json:
        print_json(member)
        return
    console.print(f"removed {member['user']} from {project}")
