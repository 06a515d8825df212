"""`labwork experiment prepare`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from labwork.cli.output import console

app = typer.Typer(no_args_is_help=True)


@app.command("prepare")
def prepare(runconfig: Annotated[str, typer.Option("--runconfig", "-c", help="run configuration name")],
            project: Annotated[Optional[Path], typer.Option("--project", "-p", help="project folder")] = None) -> None:
    """Build the run configuration's environment: a venv here, an image (docker) or a venv on the host (remote)."""
    from labwork.kernels.prepare import prepare_runconfig
    from labwork.project import load_project
    from labwork.settings import load_settings
    where = prepare_runconfig(load_project(project), runconfig, load_settings(),
                              progress=lambda line: console.print(f"  {line}", markup=False))
    console.print(f"[green]ready:[/] {where}", markup=True, highlight=False)
