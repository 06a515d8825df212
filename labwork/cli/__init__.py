"""The `labwork` command: thin commands, each calling one public function.

This module is the one place where `LabworkError` becomes an exit code and a message.
"""
from __future__ import annotations

import sys

import typer

from labwork.errors import LabworkError

app = typer.Typer(help="labwork: a self-hosted notebook workbench.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


def _register() -> None:
    from labwork.cli import (computetarget, env, experiment, gateway, notebook, project, run,
                             runconfig, serve, spark)

    project.register(app)
    serve.register(app)
    app.add_typer(computetarget.app, name="computetarget", help="Compute targets of a project.")
    app.add_typer(runconfig.app, name="runconfig", help="Run configurations of a project.")
    app.add_typer(experiment.app, name="experiment", help="Prepare run-configuration environments.")
    app.add_typer(notebook.app, name="notebook", help="The project's Jupyter server and notebooks.")
    app.add_typer(run.app, name="run", help="Run history recorded from notebooks.")
    app.add_typer(env.app, name="env", help="Check a run configuration's Python environment.")
    app.add_typer(gateway.app, name="gateway", help="The Livy-compatible Spark gateway.")
    app.add_typer(spark.app, name="spark", help="Spark sessions on the gateway.")


_register()


def main(argv: list[str] | None = None) -> None:
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except LabworkError as exc:
        from labwork.cli.output import err_console
        err_console.print(f"[bold red]error:[/] {exc.where + ': ' if exc.where else ''}{exc.message}",
                          highlight=False, markup=True)
        if exc.hint:
            err_console.print(f"  hint: {exc.hint}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and the like
        import click
        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise
