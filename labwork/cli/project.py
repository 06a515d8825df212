"""`labwork init`."""
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
