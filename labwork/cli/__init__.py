"""The `labwork` command: thin commands, each calling one public function.

This module is the one place where `LabworkError` becomes an exit code and a message.
"""
from __future__ import annotations

import sys

import typer

from labwork.errors import LabworkError

app = typer.Typer(help="labwork: a self-hosted notebook workbench.", no_args_is_help=True,
                  rich_markup_mode=None,  # plain click help: flags show no "<bool>" value
                  pretty_exceptions_enable=False, add_completion=False)


def _register() -> None:
    from labwork.cli import (computetarget, config, env, experiment, gateway, job, notebook, project, run,
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
    app.add_typer(config.app, name="config", help="The settings in effect, their sources and help.")
    app.add_typer(job.app, name="job", help="Notebooks run as jobs, now or on a schedule.")


_register()


def _usage_error(exc: BaseException) -> int | None:
    """Show a usage error the way click does (one line after the usage) and give its exit code;
    None when `exc` is not one. typer >= 0.29 raises its own copy of click's exceptions
    (`typer.TyperException`), older typer the standalone `click` ones: both are handled here."""
    import click
    if isinstance(exc, (typer.TyperException, click.exceptions.ClickException)):
        exc.show()  # type: ignore[union-attr]
        return int(getattr(exc, "exit_code", 2))
    if isinstance(exc, (typer.Abort, click.exceptions.Abort)):
        return 1
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors exit 2 with click's message, `LabworkError`s with their code."""
    try:
        code = app(args=argv, prog_name="labwork", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except LabworkError as exc:
        from rich.markup import escape

        from labwork.cli.output import err_console
        where = f"{exc.where}: " if exc.where else ""
        err_console.print(f"[bold red]error:[/] {escape(where + exc.message)}", highlight=False)
        if exc.hint:
            err_console.print(f"  hint: {escape(exc.hint)}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        code = _usage_error(exc)
        if code is None:
            raise
        sys.exit(code)
