"""`labwork env check`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from labwork.cli.output import console, print_json

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check(runconfig: Annotated[Optional[str], typer.Option("--runconfig", "-c", help="default: the project's default")] = None,
          project: Annotated[Optional[Path], typer.Option("--project", "-p", help="project folder")] = None,
          json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List conflicting libraries in a run configuration's environment, Jupyter-breaking first."""
    from labwork.kernels.envcheck import check_environment
    from labwork.project import load_project
    from labwork.settings import load_settings
    p = load_project(project)
    report = check_environment(p, runconfig or p.default_runconfig, load_settings())
    if json:
        print_json(report)
    elif report["ok"]:
        console.print(f"no conflicts in {report['python']}")
    else:
        console.print(f"[bold]{len(report['conflicts'])} conflict(s)[/] in {report['python']}, "
                      f"{report['jupyter_breaking']} breaking Jupyter:")
        for c in report["conflicts"]:
            mark = "[red]breaks Jupyter[/] " if c["breaks_jupyter"] else ""
            console.print(f"  {mark}{c['message']}", markup=True)
    if not report["ok"]:
        raise typer.Exit(1)
