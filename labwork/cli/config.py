"""`labwork config show`: the settings in effect, where each came from, and what it is for."""
from __future__ import annotations

from typing import Annotated

import typer

from labwork.cli.output import print_json, print_table

app = typer.Typer(no_args_is_help=True)


@app.command("show")
def show(json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Every setting: its value, its source (default, config.toml, a LABWORK_* variable) and its help."""
    from labwork.settings import describe_settings  # pydantic: only when the command runs
    rows = describe_settings()
    if json:
        print_json({"settings": rows})
        return
    print_table(["setting", "value", "source", "variable", "help"],
                [(r["key"], "" if r["value"] is None else r["value"], r["source"], r["variable"], r["help"])
                 for r in rows], title="labwork settings", unbroken=["setting", "variable"])
