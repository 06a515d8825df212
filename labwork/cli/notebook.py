"""`labwork notebook` commands: the project's Jupyter server and its notebooks.

Every command takes the project folder as optional first argument (default: the current folder)
and talks to the control plane (started in the background when none runs), except `preview`.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

# The helpers are shared with the start's quick path, which runs without typer (labwork/cli/start.py).
from labwork.cli.start import (_can_open_browser, _client, _config_text, _duration, _open, _project_id,
                               start_body, start_server)

app = typer.Typer(no_args_is_help=True)

DirArg = Annotated[Optional[Path], typer.Argument(help="project folder (default: the current folder)",
                                                  show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


# ---------------------------------------------------------------------------------- helpers
def _print_kernel_ends(st: dict[str, Any], console: Any) -> None:
    """The server's kernels that died (newest first): when, which, why."""
    ends = st.get("kernel_ends") or []
    if ends:
        console.print("kernels that died:")
        for e in ends:
            rc = f" ({e['run_config']})" if e.get("run_config") else ""
            console.print(f"  {e.get('at')}  kernel {e.get('kernel_id')}{rc}: {e.get('reason')}")


def _print_status(st: dict[str, Any]) -> None:
    from labwork.cli.output import console
    project = st.get("project") or {}
    console.print(f"project:  {project.get('name')} ({project.get('path')})")
    if st["state"] == "none":
        console.print("server:   none yet (start one with 'labwork notebook start')")
        return
    console.print(f"server:   {st['id']} [bold]{st['state']}[/]" + (f" on port {st['port']}" if st.get("port") else ""))
    console.print(f"config:   {_config_text(st.get('config'))}")
    console.print(f"started:  {st.get('started')}")
    if st["state"] in ("starting", "running", "stopping"):
        console.print(f"url:      {st.get('url')}")
        if st.get("deadline"):
            console.print(f"deadline: {st['deadline']} ({_duration(st.get('seconds_left'))} left)")
        else:
            console.print("deadline: none (no time limit)")
        for line in _idle_lines(st):
            console.print(line)
        kernels = st.get("kernels") or []
        if kernels:
            console.print(f"kernels:  {len(kernels)}")
            for k in kernels:
                console.print(f"  {k.get('name')}  {k.get('state')}  {k.get('notebook') or ''}  (id {k.get('id')})")
                if k.get("end_reason"):
                    console.print(f"    last died: {k['end_reason']} at {k['end']['at']} (restarted)")
        else:
            console.print("kernels:  none")
    else:
        console.print(f"stopped:  {st.get('stopped')}")
        console.print(f"reason:   {st.get('stop_reason')}")
    _print_kernel_ends(st, console)
    console.print(f"log:      {st.get('log_path')}")


def idle_seconds(text: str) -> float | None:
    """`--idle`'s value in seconds (None for 'off'); a ConfigError naming `--idle` when bad."""
    from labwork.errors import ConfigError
    from labwork.units import parse_timeout
    try:
        return parse_timeout(text)
    except ValueError as exc:
        raise ConfigError(str(exc), where="--idle") from None


def _idle_lines(st: dict[str, Any]) -> list[str]:
    """`status`'s idle lines: the timeout and when the server stops, kernels busy past the ceiling."""
    idle = st.get("idle") or {}
    timeout = (st.get("config") or {}).get("idle")
    lines = []
    if not timeout:
        lines.append("idle:     never stops when idle (start with --idle 1h for that)")
    elif idle.get("busy_kernels"):
        lines.append(f"idle:     stops when idle for {_duration(timeout)}; not idle: "
                     f"{idle['busy_kernels']} kernel(s) busy")
    elif idle.get("stop_at"):
        lines.append(f"idle:     stops when idle for {_duration(timeout)}; idle for "
                     f"{_duration(idle.get('idle_s'))}, stops at {idle['stop_at']} unless something runs")
    else:
        lines.append(f"idle:     stops when idle for {_duration(timeout)}")
    for k in idle.get("long_busy") or []:
        lines.append(f"  [yellow]kernel {k['id']} ({k.get('name')}) busy for {_duration(k['busy_s'])}[/] "
                     f"(since {k.get('busy_since')}; more than {_duration(idle.get('busy_ceiling_s'))}: "
                     "interrupt it if it is stuck)")
    return lines


def _spark_options(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# The Spark options of a spark configuration, shared with `labwork job create`.
DriverMemoryOpt = Annotated[Optional[str], typer.Option(help="Spark driver memory, e.g. 2g")]
DriverCoresOpt = Annotated[Optional[int], typer.Option(help="Spark driver cores")]
ExecutorMemoryOpt = Annotated[Optional[str], typer.Option(help="Spark executor memory, e.g. 4g")]
ExecutorCoresOpt = Annotated[Optional[int], typer.Option(help="Spark executor cores")]
ExecutorsOpt = Annotated[Optional[int], typer.Option(help="Spark executors (initial count when dynamic)")]
DynamicAllocationOpt = Annotated[Optional[bool], typer.Option("--dynamic-allocation/--no-dynamic-allocation",
                                                              help="Spark dynamic allocation")]
MinExecutorsOpt = Annotated[Optional[int], typer.Option(help="dynamic allocation minimum")]
MaxExecutorsOpt = Annotated[Optional[int], typer.Option(help="dynamic allocation maximum")]
PropertyOpt = Annotated[Optional[list[str]], typer.Option("--property", "-P",
                                                          help="extra Spark property key=value (repeatable)")]
PropertiesFileOpt = Annotated[Optional[Path], typer.Option(help="file of key=value Spark property lines")]


def spark_settings(config: str, *, prop: list[str] | None = None, properties_file: Path | None = None,
                   **values: Any) -> dict[str, Any]:
    """The `spark` settings of a configuration from the Spark options (None: not given); a
    ConfigError naming the option when one is bad or given without `--config spark`."""
    from labwork.errors import ConfigError

    spark = _spark_options(values)
    props: dict[str, str] = {}
    if properties_file is not None or prop:
        # the server-configuration models are imported only for properties to parse: the control
        # plane validates the body anyway, and a plain start does not pay for building them
        from labwork.notebooks.config import parse_properties
    if properties_file is not None:
        try:
            text = properties_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", where=str(properties_file)) from exc
        try:
            props |= parse_properties(text)
        except ConfigError as exc:
            exc.where = str(properties_file)
            raise
    for item in prop or []:
        try:
            props |= parse_properties(item)
        except ConfigError as exc:
            raise ConfigError(f"expected key=value, got {item!r}", where="--property") from exc
    if props:
        spark["properties"] = props
    if spark and config != "spark":
        raise ConfigError("Spark options need --config spark", where="--" + next(iter(spark)).replace("_", "-"))
    return spark


# ---------------------------------------------------------------------------------- commands
@app.command("start")
def start(
    folder: DirArg = None,
    config: Annotated[str, typer.Option("--config", help="python or spark")] = "python",
    classic: Annotated[bool, typer.Option("--classic", help="the classic Notebook UI (Notebook 7's /tree)")] = False,
    hours: Annotated[Optional[float], typer.Option("--hours", help="time limit in hours (default 6)")] = None,
    no_limit: Annotated[bool, typer.Option("--no-limit", help="no time limit")] = False,
    idle: Annotated[Optional[str], typer.Option(
        "--idle", help="stop the server once idle this long (no kernel busy, no cell run, terminal or "
                       "client activity), e.g. 1h or 30m; default: never")] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="do not open a browser")] = False,
    driver_memory: DriverMemoryOpt = None,
    driver_cores: DriverCoresOpt = None,
    executor_memory: ExecutorMemoryOpt = None,
    executor_cores: ExecutorCoresOpt = None,
    executors: ExecutorsOpt = None,
    dynamic_allocation: DynamicAllocationOpt = None,
    min_executors: MinExecutorsOpt = None,
    max_executors: MaxExecutorsOpt = None,
    prop: PropertyOpt = None,
    properties_file: PropertiesFileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Start the project's Jupyter server and print its URL with the token."""
    body = start_body(config, classic, hours, no_limit)
    if idle is not None:
        body["idle"] = idle_seconds(idle)
    spark = spark_settings(config, driver_memory=driver_memory, driver_cores=driver_cores,
                           executor_memory=executor_memory, executor_cores=executor_cores,
                           executors=executors, dynamic_allocation=dynamic_allocation,
                           min_executors=min_executors, max_executors=max_executors,
                           prop=prop, properties_file=properties_file)
    if spark:
        body["spark"] = spark
    start_server(folder, body, no_browser=no_browser, json=json)


@app.command("stop")
def stop(folder: DirArg = None, json: JsonOpt = False) -> None:
    """Stop the project's server (its kernels too)."""
    from labwork.cli.output import console, print_json
    client = _client()
    st = client.request("DELETE", f"/api/projects/{_project_id(client, folder)}/server")
    if json:
        print_json(st)
        return
    console.print(f"stopped the Jupyter server of {st['project']['name']}: {st['stop_reason']}")


@app.command("status")
def status(folder: DirArg = None, json: JsonOpt = False) -> None:
    """URL, configuration, start time, time left and kernels of the project's server."""
    from labwork.cli.output import print_json
    client = _client()
    st = client.request("GET", f"/api/projects/{_project_id(client, folder)}/server")
    if json:
        print_json(st)
    else:
        _print_status(st)


@app.command("logs")
def logs(folder: DirArg = None,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the server stops")] = False,
         server: Annotated[Optional[int], typer.Option("--server", help="an earlier server's id")] = None) -> None:
    """The server's output (kept after it stops), with labwork's own lines (deadline, stop reason)."""
    client = _client()
    pid = _project_id(client, folder)
    from labwork.cli.output import print_log

    chosen: dict[str, Any] = {} if server is None else {"server_id": server}

    def fetch(offset: int) -> dict[str, Any]:
        chunk = client.request("GET", f"/api/projects/{pid}/server/logs", params={"offset": offset, **chosen})
        chosen["server_id"] = chunk["server_id"]  # later chunks: the same server's log
        return chunk

    print_log(fetch, follow=follow)


@app.command("list")
def list_(all_: Annotated[bool, typer.Option("--all", help="stopped servers too")] = False,
          json: JsonOpt = False) -> None:
    """The servers of every project."""
    from labwork.cli.output import console, print_json, print_table
    rows = _client().request("GET", "/api/servers", params={"all": str(all_).lower()})
    if json:
        print_json(rows)
        return
    if not rows:
        console.print("no Jupyter server runs" + (" or ran" if all_ else ""))
        return
    print_table(["id", "project", "state", "config", "port", "time left / stop reason", "url"],
                [(r["id"], (r.get("project") or {}).get("name"), r["state"],
                  f"{r['config']['kind']}/{r['ui']}", r["port"],
                  _duration(r["seconds_left"]) if r["state"] == "running" else (r.get("stop_reason") or ""),
                  r["url"] or "") for r in rows])


@app.command("extend")
def extend(folder: DirArg = None,
           hours: Annotated[Optional[float], typer.Option("--hours", help="hours to add (default 6)")] = None,
           no_limit: Annotated[bool, typer.Option("--no-limit", help="remove the time limit")] = False,
           json: JsonOpt = False) -> None:
    """Add hours to the server's deadline, or remove the limit."""
    from labwork.cli.output import console, print_json
    from labwork.errors import ConfigError
    if hours is not None and no_limit:
        raise ConfigError("give --hours or --no-limit, not both", where="--hours")
    body: dict[str, Any] = {"hours": None} if no_limit else ({"hours": hours} if hours is not None else {})
    client = _client()
    st = client.request("POST", f"/api/projects/{_project_id(client, folder)}/server/extend", json=body)
    if json:
        print_json(st)
    elif st["deadline"]:
        console.print(f"deadline of {st['project']['name']}'s server: {st['deadline']} "
                      f"({_duration(st['seconds_left'])} left)")
    else:
        console.print(f"{st['project']['name']}'s server has no time limit now")


@app.command("recent")
def recent(folder: DirArg = None, json: JsonOpt = False) -> None:
    """Notebooks run in the project, newest first, with the configuration they last ran with."""
    from labwork.cli.output import console, print_json, print_table
    client = _client()
    rows = client.request("GET", f"/api/projects/{_project_id(client, folder)}/notebooks/recent")
    if json:
        print_json(rows)
        return
    if not rows:
        console.print("no notebook has run in this project yet")
        return
    print_table(["notebook", "last run", "run configuration", "server configuration"],
                [(r["notebook"] + ("" if r["exists"] else " (missing)"), r["last_run"], r["runconfig"],
                  _config_text(r["server_config"])) for r in rows])


@app.command("open")
def open_(notebook: Annotated[Path, typer.Argument(help="the notebook (.ipynb) to open")],
          no_browser: Annotated[bool, typer.Option("--no-browser", help="only print the URL")] = False,
          json: JsonOpt = False) -> None:
    """Open NOTEBOOK on the project's server (started with the configuration the notebook last ran
    with, or the running one) and print its URL."""
    from labwork.cli.output import console, err_console, print_json
    from labwork.project.files import find_root
    path = notebook.expanduser().resolve()
    root = find_root(path.parent)
    client = _client()
    pid = client.request("POST", "/api/projects", json={"path": str(root)})["id"]
    rel = path.relative_to(root).as_posix() if root in path.parents else str(notebook)
    out = client.request("POST", f"/api/projects/{pid}/notebooks/open", json={"notebook": rel})
    if json:
        print_json(out)
        return
    if out["started"]:
        err_console.print(f"started the Jupyter server of {out['server']['project']['name']} "
                          f"({_config_text(out['config'])})")
    if out.get("note"):
        err_console.print(f"note: {out['note']}")
    console.print(out["url"], soft_wrap=True)
    _open(out["url"], no_browser)


@app.command("preview")
def preview(notebook: Annotated[Path, typer.Argument(help="the notebook (.ipynb)")],
            output: Annotated[Optional[Path], typer.Option("--output", "-o",
                                                           help="HTML file to write ('-' for stdout)")] = None) -> None:
    """Render NOTEBOOK as sanitized read-only HTML (its own scripts never run); no server needed."""
    from labwork.cli.output import err_console
    from labwork.notebooks.preview import render_preview
    html = render_preview(notebook)
    if output is not None and str(output) == "-":
        sys.stdout.write(html)
        return
    if output is None:
        import tempfile
        folder = Path(tempfile.gettempdir()) / "labwork-preview"
        folder.mkdir(exist_ok=True)
        output = folder / f"{notebook.stem}.html"
    output.write_text(html, encoding="utf-8")
    err_console.print(f"wrote {output}")
    if _can_open_browser():
        import webbrowser
        webbrowser.open(output.resolve().as_uri())
