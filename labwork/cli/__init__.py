"""The `labwork` command: thin commands, each calling one public function.

This module is the one place where `LabworkError` becomes an exit code and a message. typer is
imported when a command line needs it: a plain `labwork notebook start` runs without it
(labwork/cli/start.py `quick_start`).
"""
from __future__ import annotations

import sys
from typing import Any

from labwork.errors import LabworkError

_app: Any = None


def _typer_app() -> Any:
    """The typer application (made at first use)."""
    global _app
    if _app is None:
        import typer
        _app = typer.Typer(help="labwork: a self-hosted notebook workbench.", no_args_is_help=True,
                           rich_markup_mode=None,  # plain click help: flags show no "<bool>" value
                           pretty_exceptions_enable=False, add_completion=False)
    return _app


def __getattr__(name: str) -> Any:
    if name == "app":  # `labwork.cli.app`, the typer application, as before it was made lazily
        return _typer_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The sub-command groups (each the module labwork.cli.<name>) and their help. A command line
# that names one registers only that one: typer builds (and introspects the signature of) every
# command of every registered group before it dispatches, a noticeable part of a short command.
GROUPS: dict[str, str] = {
    "computetarget": "Compute targets of a project.",
    "runconfig": "Run configurations of a project.",
    "experiment": "Prepare run-configuration environments.",
    "notebook": "The project's Jupyter server and notebooks.",
    "run": "Run history recorded from notebooks.",
    "env": "Check a run configuration's Python environment.",
    "gateway": "The Livy-compatible Spark gateway.",
    "spark": "Spark sessions on the gateway.",
    "config": "The settings in effect, their sources and help.",
    "job": "Notebooks run as jobs, now or on a schedule.",
    "user": "Users of the control plane.",
    "token": "Personal API tokens.",
    "project": "Projects' members and roles.",
}
_registered: set[str] = set()


def _register(only: str | None = None) -> None:
    """Add the commands to `app`: just the group `only` when it names one, else all of them
    (bare `labwork`, `--help`, the top-level commands, a mistyped name: all must be known)."""
    import importlib

    app = _typer_app()
    names = [only] if only in GROUPS else ["", *GROUPS]
    for name in names:
        if name in _registered:
            continue
        _registered.add(name)
        if not name:  # the top-level commands
            from labwork.cli import project, serve
            project.register(app)
            serve.register(app)
            continue
        app.add_typer(importlib.import_module(f"labwork.cli.{name}").app, name=name, help=GROUPS[name])


def _usage_error(exc: BaseException) -> int | None:
    """Show a usage error the way click does (one line after the usage) and give its exit code;
    None when `exc` is not one. typer >= 0.29 raises its own copy of click's exceptions
    (`typer.TyperException`), older typer the standalone `click` ones: both are handled here."""
    import click
    import typer
    if isinstance(exc, (typer.TyperException, click.exceptions.ClickException)):
        exc.show()  # type: ignore[union-attr]
        return int(getattr(exc, "exit_code", 2))
    if isinstance(exc, (typer.Abort, click.exceptions.Abort)):
        return 1
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors exit 2 with click's message, `LabworkError`s with their code."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        from labwork.cli.start import quick_start
        if quick_start(args):
            return
        _register(args[0] if args else None)
        code = _typer_app()(args=args, prog_name="labwork", standalone_mode=False)
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
