"""`labwork job` commands: notebooks run as jobs with their configuration, now or on a schedule.

Thin: each command is one call of the control plane's jobs API (labwork.jobs.routes), which calls
one `labwork.jobs.library.Jobs` method. The project is the one holding the current folder (or
`--project DIR`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from labwork.cli.notebook import (DriverCoresOpt, DriverMemoryOpt, DynamicAllocationOpt, ExecutorCoresOpt,
                                  ExecutorMemoryOpt, ExecutorsOpt, MaxExecutorsOpt, MinExecutorsOpt,
                                  PropertiesFileOpt, PropertyOpt, spark_settings)

app = typer.Typer(no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ProjectOpt = Annotated[Optional[Path], typer.Option("--project", help="project folder (default: the current folder)",
                                                    show_default=False)]
ParamOpt = Annotated[Optional[list[str]], typer.Option("--param", "-p", help="a parameter NAME=VALUE (JSON values "
                                                       "keep their type: n=3, xs=[1,2]); repeat for more")]
FINAL = ("completed", "failed", "cancelled", "skipped", "missed")


def _client():  # noqa: ANN202
    from labwork.server.client import connect
    return connect()


def _base(client: Any, folder: Path | None) -> str:
    from labwork.project.files import find_root
    root = find_root(folder)
    pid = client.request("POST", "/api/projects", json={"path": str(root)})["id"]
    return f"/api/projects/{pid}/jobs"


def _params(pairs: list[str] | None) -> dict[str, Any]:
    from labwork.jobs.params import parse_pairs
    return parse_pairs(pairs)


def _print_job(job: dict[str, Any]) -> None:
    from labwork.cli.output import console
    console.print(f"job {job['name']} (id {job['id']}): {job['notebook']} on kernel '{job['kernel']}'")
    if job["parameters"]:
        console.print(f"  parameters: {job['parameters']}")
    if job["schedule"]:
        state = "enabled" if job["enabled"] else "disabled"
        console.print(f"  schedule: {job['schedule']} ({job['timezone']}, {state}; missed runs: {job['missed']}); "
                      f"next run {job['next_run'] or '—'}")
    limits = [f"timeout {job['timeout_s']:g} s" if job["timeout_s"] else "no timeout",
              f"{job['retries']} retries", f"at most {job['max_concurrent']} at once"]
    console.print("  " + ", ".join(limits))
    if job["webhook_url"]:
        console.print(f"  webhook: {job['webhook_url']} (on failure{' and success' if job['notify_success'] else ''})")
    last = job.get("last_run")
    if last:
        console.print(f"  last run: {last['id']} {last['status']}" + (f" — {last['reason']}" if last["reason"] else ""))


def _print_run(run: dict[str, Any]) -> None:
    from labwork.cli.output import console
    dur = f", {run['duration_s']:.1f} s" if run.get("duration_s") is not None else ""
    console.print(f"run {run['id']}: {run['status']}{dur} (attempt {run['attempt']}, {run['trigger']})")
    if run.get("reason"):
        console.print(f"  {run['reason']}")
    if run.get("history_run"):
        console.print(f"  run history: labwork run show {run['history_run']}")


@app.command()
def create(name: Annotated[str, typer.Argument(help="the job's name")],
           notebook: Annotated[str, typer.Option("--notebook", help="the notebook, relative to the project")],
           runconfig: Annotated[Optional[str], typer.Option("--runconfig", help="run configuration (kernel "
                                "'<project> <runconfig>'); default: the one the notebook last ran with")] = None,
           config: Annotated[Optional[str], typer.Option("--config", help="python or spark (default: the "
                             "configuration the notebook last ran with)")] = None,
           param: ParamOpt = None,
           schedule: Annotated[Optional[str], typer.Option("--schedule", help="cron expression, e.g. '0 6 * * *'")] = None,
           timezone: Annotated[str, typer.Option("--timezone", help="the schedule's IANA time zone")] = "UTC",
           missed: Annotated[str, typer.Option("--missed", help="a fire time missed while the control plane "
                             "was down: run_once or skip")] = "run_once",
           timeout: Annotated[Optional[str], typer.Option("--timeout", help="e.g. 2h, 30m")] = None,
           retries: Annotated[int, typer.Option("--retries", help="retries after a failure")] = 0,
           retry_delay: Annotated[Optional[str], typer.Option("--retry-delay", help="back-off before the first "
                                  "retry (doubles each time), e.g. 30s")] = None,
           max_concurrent: Annotated[int, typer.Option("--max-concurrent", help="runs at once; a trigger "
                                     "beyond is skipped and recorded")] = 1,
           webhook: Annotated[Optional[str], typer.Option("--webhook", help="URL told of failures (JSON POST)")] = None,
           notify_success: Annotated[bool, typer.Option("--notify-success", help="tell the webhook of successes too")] = False,
           driver_memory: DriverMemoryOpt = None, driver_cores: DriverCoresOpt = None,
           executor_memory: ExecutorMemoryOpt = None, executor_cores: ExecutorCoresOpt = None,
           executors: ExecutorsOpt = None, dynamic_allocation: DynamicAllocationOpt = None,
           min_executors: MinExecutorsOpt = None, max_executors: MaxExecutorsOpt = None,
           prop: PropertyOpt = None, properties_file: PropertiesFileOpt = None,
           project: ProjectOpt = None, json: JsonOpt = False) -> None:
    """Make a notebook a job (run it with 'labwork job run NAME', or on its --schedule); the Spark
    options are those of 'labwork notebook start' and need --config spark."""
    from labwork.cli.output import print_json
    from labwork.errors import ConfigError
    if config is not None and config not in ("python", "spark"):
        raise ConfigError(f"expected python or spark, got {config!r}", where="--config")
    spark = spark_settings(config or "", driver_memory=driver_memory, driver_cores=driver_cores,
                           executor_memory=executor_memory, executor_cores=executor_cores,
                           executors=executors, dynamic_allocation=dynamic_allocation,
                           min_executors=min_executors, max_executors=max_executors,
                           prop=prop, properties_file=properties_file)
    body: dict[str, Any] = {"name": name, "notebook": notebook, "parameters": _params(param),
                            "timezone": timezone, "missed": missed, "retries": retries,
                            "max_concurrent": max_concurrent, "notify_success": notify_success}
    for key, value in (("runconfig", runconfig), ("schedule", schedule), ("timeout", timeout),
                       ("retry_delay", retry_delay), ("webhook_url", webhook)):
        if value is not None:
            body[key] = value
    if config is not None:
        body["config"] = {"kind": config} | ({"spark": spark} if spark else {})
    client = _client()
    job = client.request("POST", _base(client, project), json=body)
    print_json(job) if json else _print_job(job)


@app.command("list")
def list_(project: ProjectOpt = None, json: JsonOpt = False) -> None:
    """The project's jobs with their schedule, next run and last status."""
    from labwork.cli.output import print_json, print_table
    client = _client()
    jobs = client.request("GET", _base(client, project))
    if json:
        print_json(jobs)
        return
    print_table(["name", "notebook", "kernel", "schedule", "next run", "last status"],
                [[j["name"], j["notebook"], j["kernel"], j["schedule"] or "—",
                  j["next_run"] or "—", (j["last_run"] or {}).get("status", "—")] for j in jobs])


@app.command()
def show(name: str, project: ProjectOpt = None, json: JsonOpt = False) -> None:
    """A job's definition and its latest runs."""
    from labwork.cli.output import print_json
    client = _client()
    job = client.request("GET", f"{_base(client, project)}/{name}")
    print_json(job) if json else _print_job(job)


@app.command()
def update(name: str,
           schedule: Annotated[Optional[str], typer.Option("--schedule", help="new cron expression ('' removes it)")] = None,
           timezone: Annotated[Optional[str], typer.Option("--timezone")] = None,
           enable: Annotated[Optional[bool], typer.Option("--enable/--disable", help="switch the schedule")] = None,
           param: ParamOpt = None, project: ProjectOpt = None, json: JsonOpt = False) -> None:
    """Change a job's schedule, its switch or its parameters."""
    from labwork.cli.output import print_json
    body: dict[str, Any] = {}
    if schedule is not None:
        body["schedule"] = schedule or None
    if timezone is not None:
        body["timezone"] = timezone
    if enable is not None:
        body["enabled"] = enable
    if param:
        body["parameters"] = _params(param)
    client = _client()
    job = client.request("PATCH", f"{_base(client, project)}/{name}", json=body)
    print_json(job) if json else _print_job(job)


@app.command()
def run(name: str, param: ParamOpt = None,
        wait: Annotated[bool, typer.Option("--wait", help="wait for the end; exit non-zero unless it completed")] = False,
        project: ProjectOpt = None, json: JsonOpt = False) -> None:
    """Run a job now (parameters given here override the job's for this run)."""
    from labwork.cli.output import print_json
    client = _client()
    base = _base(client, project)
    out = client.request("POST", f"{base}/{name}/runs", json={"parameters": _params(param)})
    while wait and out["status"] not in FINAL:
        time.sleep(0.5)
        out = client.request("GET", f"{base}/runs/{out['id']}")
    print_json(out) if json else _print_run(out)
    if wait and out["status"] != "completed":
        raise typer.Exit(1)


@app.command()
def runs(name: str, limit: Annotated[int, typer.Option("--limit")] = 50, project: ProjectOpt = None,
         json: JsonOpt = False) -> None:
    """A job's runs, newest first (skipped and missed triggers included)."""
    from labwork.cli.output import print_json, print_table
    client = _client()
    rows = client.request("GET", f"{_base(client, project)}/{name}/runs", params={"limit": limit})
    if json:
        print_json(rows)
        return
    print_table(["run", "status", "trigger", "attempt", "started", "duration", "reason"],
                [[r["id"], r["status"], r["trigger"], r["attempt"], r["started"] or r["scheduled_for"] or "—",
                  "—" if r["duration_s"] is None else f"{r['duration_s']:.1f} s", r["reason"] or ""] for r in rows])


@app.command()
def logs(run_id: Annotated[int, typer.Argument(help="the run's id")],
         follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
         project: ProjectOpt = None) -> None:
    """A run's log: the runner's and the kernel's output, with labwork's own lines."""
    client = _client()
    base = _base(client, project)
    from labwork.cli.output import print_log

    print_log(lambda offset: client.request("GET", f"{base}/runs/{run_id}/logs", params={"offset": offset}),
              follow=follow)


@app.command()
def output(run_id: Annotated[int, typer.Argument(help="the run's id")],
           out: Annotated[Optional[Path], typer.Option("-o", "--output", help="where to write it "
                          "(default: run-<id>-<notebook> here)")] = None,
           project: ProjectOpt = None) -> None:
    """Download a run's output notebook (kept whether it completed or failed)."""
    from labwork.cli.output import console
    client = _client()
    text = client.request("GET", f"{_base(client, project)}/runs/{run_id}/output")
    target = out or Path(f"run-{run_id}.ipynb")
    import json as jsonlib
    target.write_text(text if isinstance(text, str) else jsonlib.dumps(text, indent=1), encoding="utf-8")
    console.print(f"wrote {target}")


@app.command()
def cancel(run_id: Annotated[int, typer.Argument(help="the run's id")], project: ProjectOpt = None,
           json: JsonOpt = False) -> None:
    """Cancel a queued or running run (its output notebook so far is kept)."""
    from labwork.cli.output import print_json
    client = _client()
    out = client.request("POST", f"{_base(client, project)}/runs/{run_id}/cancel")
    print_json(out) if json else _print_run(out)


@app.command()
def delete(name: str, project: ProjectOpt = None, json: JsonOpt = False) -> None:
    """Delete a job with its runs, logs and output notebooks."""
    from labwork.cli.output import console, print_json
    client = _client()
    out = client.request("DELETE", f"{_base(client, project)}/{name}")
    print_json(out) if json else console.print(f"deleted job {name}")
