"""`labwork runconfig list | show`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from labwork.cli.output import console, print_json, print_table

app = typer.Typer(no_args_is_help=True)
ProjectOpt = Annotated[Optional[Path], typer.Option("--project", "-p", help="project folder (default: here)")]


@app.command("list")
def list_(project: ProjectOpt = None, json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Run configurations of the project, one kernel each."""
    from labwork.project import load_project
    p = load_project(project)
    if json:
        print_json({"runconfigs": {n: rc.model_dump(mode="json") for n, rc in p.runconfigs.items()},
                    "problems": [str(e) for e in p.problems]})
        return
    print_table(["name", "kernel", "target", "framework", "environment"],
                [(n, f"{p.name} {n}", rc.target, rc.framework, rc.environment.requirements or "current")
                 for n, rc in sorted(p.runconfigs.items())], title=f"run configurations of {p.name}")
    for e in p.problems:
        console.print(f"[yellow]problem:[/] {e}")


@app.command("show")
def show(name: str, project: ProjectOpt = None) -> None:
    """One run configuration with its compute target."""
    from labwork.project import load_project
    p = load_project(project)
    rc = p.runconfig(name)
    print_json({"name": name, "kernel": f"{p.name} {name}", **rc.model_dump(mode="json"),
                "compute_target": p.target_of(rc).model_dump(mode="json")})
