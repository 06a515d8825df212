"""What `labwork notebook start` does, without typer: the request it sends and what it prints,
with the helpers the other `labwork notebook` commands share, and the start's quick path.

The quick path: `labwork notebook start` in its plain forms is parsed here, before typer is
imported at all. typer (0.29) coerces every option through a pydantic `TypeAdapter`, importing
pydantic and building an adapter per option; with typer's own import that is most of the CLI's
time in a start (bench/notebook_start.py). The forms parsed here are `[DIR]`, `--config VALUE`,
`--hours NUMBER`, `--classic`, `--no-limit`, `--no-browser` and `--json`, each at most once, a value
as the next word. Every other command line (`--help`, a Spark option, `--hours=2`, a value typer
would refuse, an option given twice, ...) goes to the typer command (labwork/cli/notebook.py
`start`), which ends in the same `start_body` and `start_server`.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

# The quick path's options -> the start command's parameter names (labwork/cli/notebook.py
# `start`; tests/cli/test_quick_start.py checks that they are the command's own).
QUICK_FLAGS = {"--classic": "classic", "--no-limit": "no_limit", "--no-browser": "no_browser", "--json": "json"}
QUICK_VALUES = {"--config": "config", "--hours": "hours"}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


# ---------------------------------------------------------------------------------- helpers
def _client():
    from labwork.server.client import connect
    return connect()


def _project_id(client, folder: Path | None) -> int:
    """Register (idempotently) the project holding `folder` and return its id. The control plane
    finds the project folder (`labwork.toml` here or above) as for any folder it is given, with the
    same error for a folder outside a project; the CLI sends the absolute path (its own working
    directory is not the control plane's) and does not import the project models for it."""
    path = (folder if folder is not None else Path.cwd()).expanduser().resolve()
    return client.request("POST", "/api/projects", json={"path": str(path)})["id"]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "no limit"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h {m:02d}m"
    return f"{m}m {s:02d}s" if m else f"{s}s"


def _config_text(config: dict | None) -> str:
    if not config:
        return ""
    ui = "JupyterLab" if config.get("ui") == "lab" else "classic Notebook"
    text = f"{config.get('kind')}, {ui}"
    if config.get("kind") == "spark":
        sp = config.get("spark", {})
        text += (f"; driver {sp.get('driver_memory')} x{sp.get('driver_cores')} cores, executors "
                 f"{sp.get('executors')} x {sp.get('executor_memory')} x{sp.get('executor_cores')} cores")
        if sp.get("dynamic_allocation"):
            text += f" (dynamic {sp.get('min_executors')}..{sp.get('max_executors')})"
        props = sp.get("properties") or {}
        if props:
            text += "; " + ", ".join(f"{k}={v}" for k, v in props.items())
    return text


def _can_open_browser() -> bool:
    """Only where a graphical browser can appear (a console browser would take over the terminal)."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open(url: str, no_browser: bool) -> None:
    from labwork.cli.output import console
    if no_browser:
        return
    if _can_open_browser():
        import webbrowser
        if webbrowser.open(url):
            return
    console.print("(no browser to open here: open the URL above yourself)")


# ---------------------------------------------------------------------------------- the start
def start_body(config: str, classic: bool, hours: float | None, no_limit: bool) -> dict[str, Any]:
    """The start request's body from the plain options; a ConfigError naming the option."""
    from labwork.errors import ConfigError

    if config not in ("python", "spark"):
        raise ConfigError(f"expected python or spark, got {config!r}", where="--config")
    if hours is not None and no_limit:
        raise ConfigError("give --hours or --no-limit, not both", where="--hours")
    body: dict[str, Any] = {"kind": config, "ui": "classic" if classic else "lab"}
    if no_limit:
        body["hours"] = None
    elif hours is not None:
        body["hours"] = hours
    return body


def start_server(folder: Path | None, body: dict[str, Any], *, no_browser: bool, json: bool) -> None:
    """Ask the control plane to start the project's server; print its URL (or its JSON)."""
    from labwork.cli.output import print_json

    client = _client()
    pid = _project_id(client, folder)
    st = client.request("POST", f"/api/projects/{pid}/server", json=body)
    if json:
        print_json(st)
        return
    from labwork.cli.output import console
    console.print(f"Jupyter server of [bold]{st['project']['name']}[/] running ({_config_text(st['config'])})")
    console.print(f"  {st['url']}", soft_wrap=True)
    console.print("  deadline: " + (f"{st['deadline']} ({_duration(st['seconds_left'])})" if st["deadline"]
                                    else "none (no time limit)"))
    if (st.get("config") or {}).get("idle"):
        console.print(f"  idle:     stops when idle for {_duration(st['config']['idle'])}")
    _open(st["url"], no_browser)


def parse_quick(args: list[str]) -> dict[str, Any] | None:
    """The start command's arguments (after `notebook start`) when they are in a plain form, as
    the command's parameters; None: typer parses them."""
    values: dict[str, Any] = {}
    words = iter(args)
    for word in words:
        if word in QUICK_FLAGS:
            name, value = QUICK_FLAGS[word], True
        elif word in QUICK_VALUES:
            name, value = QUICK_VALUES[word], next(words, None)
            if value is None or value.startswith("-") and not _NUMBER.match(value) or not value:
                return None
            if name == "hours":
                if not _NUMBER.match(value):
                    return None  # typer says what is wrong with it
                value = float(value)
        elif word.startswith("-") or not word:
            return None
        else:
            name, value = "folder", Path(word)
        if name in values:
            return None
        values[name] = value
    return values


def quick_start(args: list[str]) -> bool:
    """Run `labwork notebook start ...` here when its arguments are plain; False: not handled."""
    if args[:2] != ["notebook", "start"]:
        return False
    values = parse_quick(args[2:])
    if values is None:
        return False
    body = start_body(values.get("config", "python"), values.get("classic", False), values.get("hours"),
                      values.get("no_limit", False))
    start_server(values.get("folder"), body, no_browser=values.get("no_browser", False),
                 json=values.get("json", False))
    return True
