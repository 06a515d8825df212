"""`labwork run` commands: run history recorded from notebooks."""
from __future__ import annotations

from pathlib import Path

import typer

from labwork.cli.output import console, print_json, print_table

app = typer.Typer(no_args_is_help=True)


def _client():
    from labwork.server.client import connect
    return connect()


def _when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")


def _first_line(code: str, width: int = 60) -> str:
    line = (code.strip().splitlines() or [""])[0]
    return line if len(line) <= width else line[: width - 3] + "..."


@app.command("list")
def list_cmd(project: str = typer.Option(None, "--project", help="Project folder (or project name)."),
             notebook: str = typer.Option(None, "--notebook", help="Notebook path or file name."),
             status: str = typer.Option(None, "--status", help="running, completed, failed or interrupted."),
             since: str = typer.Option(None, "--since", help="Started at or after (ISO date/time)."),
             until: str = typer.Option(None, "--until", help="Started at or before (ISO date/time)."),
             user: str = typer.Option(None, "--user", help="Only the runs of this user."),
             limit: int = typer.Option(50, "--limit"), offset: int = typer.Option(0, "--offset"),
             as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Runs, newest first."""
    from labwork.history.client import list_runs
    page = list_runs(_client(), project=project, notebook=notebook, status=status, since=since,
                     until=until, user=user, limit=limit, offset=offset)
    if as_json:
        print_json(page)
        return
    print_table(["run", "started", "user", "project", "notebook", "runconfig", "status", "entries", "errors"],
                [(r["id"][:12], _when(r["started_at"]), r.get("user") or "", r["project"], r["notebook"],
                  r["runconfig"], r["status"], r["entry_count"], r["error_count"]) for r in page["runs"]],
                title=f"{len(page['runs'])} of {page['total']} runs")


@app.command("show")
def show_cmd(run: str = typer.Argument(..., help="Run id (or a unique prefix)."),
             as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """A run: its entries, logged values and outputs."""
    from labwork.history.client import get_run
    r = get_run(_client(), run)
    if as_json:
        print_json(r)
        return
    console.print(f"[bold]run {r['id']}[/]  {r['status']}")
    for label, key in (("project", "project"), ("folder", "project_dir"), ("notebook", "notebook"),
                       ("runconfig", "runconfig"), ("kernel", "kernel_id"), ("source", "source")):
        if r.get(key):
            console.print(f"  {label:<10} {r[key]}")
    console.print(f"  {'started':<10} {_when(r['started_at'])}"
                  + (f"   ended {_when(r['ended_at'])}" if r.get("ended_at") else ""))
    if r["entries"]:
        print_table(["#", "[n]", "status", "ms", "code", "error"],
                    [(e["seq"], e["execution_count"], e["status"],
                      None if e["duration_ms"] is None else f"{e['duration_ms']:.1f}",
                      _first_line(e["code"]),
                      f"{e['error_name']}: {e['error_value']}" if e.get("error_name") else None)
                     for e in r["entries"]], title="entries")
    else:
        console.print("  no entries (history was off)")
    if r["values"]:
        print_table(["name", "kind", "points", "last"],
                    [(v["name"], v["kind"], v["points"], str(v["last"])[:60]) for v in r["values"]],
                    title="values")
    if r["artifacts"]:
        print_table(["output", "bytes", "uploaded", "versions"],
                    [(a["path"], f"{a['size']:,}", _when(a["uploaded_at"]), a["versions"])
                     for a in r["artifacts"]], title="outputs")


@app.command("download")
def download_cmd(run: str = typer.Argument(..., help="Run id (or a unique prefix)."),
                 to: Path = typer.Option(None, "--to", help="Folder to write into (default ./run-<id>)."),
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """Download a run's outputs."""
    from labwork.history.client import download_run
    result = download_run(_client(), run, to)
    if as_json:
        print_json(result)
        return
    for f in result["files"]:
        console.print(f"{f['file']}  ({f['size']:,} bytes)")
    console.print(f"{len(result['files'])} outputs of run {result['run']} in {result['to']}")


@app.command("export")
def export_cmd(runs: list[str] = typer.Argument(None, help="Run ids (default: all runs, or --project's)."),
               mlflow: str = typer.Option(..., "--mlflow", help="MLflow tracking URI (file:..., sqlite:///..., http://...)."),
               project: str = typer.Option(None, "--project", help="Only this project's runs."),
               experiment: str = typer.Option(None, "--experiment", help="MLflow experiment (default: project name)."),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Write runs into MLflow: a run per notebook run, a nested run per entry."""
    from labwork.history.client import export_runs
    results = export_runs(_client(), mlflow, runs or None, project=project, experiment=experiment)
    if as_json:
        print_json(results)
        return
    for x in results:
        what = "already exported" if x["skipped"] else \
            f"{x['entries']} entries, {x['metrics']} metric points, {x['artifacts']} outputs"
        console.print(f"{x['run'][:12]} -> mlflow run {x['mlflow_run_id']} (experiment {x['experiment_id']}): {what}")
