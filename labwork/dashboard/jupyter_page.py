"""Project › Jupyter: the Hopsworks-style service page.

Configuration (Python or Spark, JupyterLab or classic, Spark resources and extra properties, hours
or no limit), Start with progress, Stop, Open Jupyter (the server through the control plane, /user/<name>/<project>/, in a new
tab), the time left counting down and Extend; server logs (view, follow, download, kept after the
server stops); running kernels and the project's Spark sessions; recent notebooks with Open in
Jupyter; the environment check's alert.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from labwork.auth.identity import current_user, identity_of
from labwork.auth.server_access import servers_seen_by, whose_server
from labwork.dashboard import livy
from labwork.dashboard.auth import form_auth, json_auth, page_auth
from labwork.dashboard.jobs import Job, jobs_of
from labwork.dashboard.web import (dashboard_of, error_text, fails_as, file_problems, fmt_hours, fmt_time,
                                   get_project, limit_hours, message_page, render, render_fragment,
                                   time_limit)
from labwork.errors import ConfigError, LabworkError, NotFound
from labwork.notebooks.manager import ServerManager

router = APIRouter()

NOTICES = {
    "added": "Project added.",
    "started": "The Jupyter server is running.",
    "stopped": "The Jupyter server was stopped. Its log is kept below.",
    "checking": "Checking the environment again…",
}
LOG_WINDOW = 200_000  # the viewer starts this many bytes before the end of a big log
SPARK_FIELDS = ("driver_memory", "driver_cores", "executor_memory", "executor_cores", "executors",
                "min_executors", "max_executors")


def _manager(request: Request) -> ServerManager:
    return dashboard_of(request).servers


# --- the configuration form -------------------------------------------------------------------------

def form_fields(cfg: dict[str, Any] | None, default_hours: float) -> dict[str, Any]:
    """The form's values (strings) for a ServerConfig dict (or the defaults)."""
    from labwork.notebooks.config import ServerConfig, format_properties
    from labwork.units import format_seconds
    cfg = cfg or ServerConfig(hours=default_hours).model_dump(mode="json")
    sp = cfg.get("spark") or {}
    hours = cfg.get("hours", default_hours)
    fields = {"kind": cfg.get("kind", "python"), "ui": cfg.get("ui", "lab"),
              "hours": "" if hours is None else f"{hours:g}", "no_limit": hours is None,
              "idle": format_seconds(cfg["idle"]) if cfg.get("idle") else "",
              "dynamic_allocation": bool(sp.get("dynamic_allocation")),
              "properties": format_properties(sp.get("properties") or {})}
    for key in SPARK_FIELDS:
        fields[key] = str(sp.get(key, ""))
    return fields


def _int(form: dict[str, Any], key: str, label: str) -> int:
    raw = str(form.get(key) or "").strip()
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{label} must be a whole number, got {raw!r}", where="Spark") from None


def idle_from_form(form: dict[str, Any]) -> float | None:
    """The 'Stop when idle for' field in seconds (blank: never); ConfigError naming the field."""
    from labwork.units import parse_timeout
    raw = str(form.get("idle") or "").strip()
    try:
        return parse_timeout(raw)
    except ValueError as exc:
        raise ConfigError(f"{exc}; leave it blank for a server that never stops when idle",
                          where="stop when idle for") from None


def config_from_form(form: dict[str, Any]) -> dict[str, Any]:
    """Validate the posted form into a ServerConfig dict; ConfigError names the field."""
    from labwork.notebooks.config import MAX_HOURS, parse_config, parse_properties
    kind = str(form.get("kind") or "python")
    ui = str(form.get("ui") or "lab")
    if form.get("no_limit"):
        hours = None
    else:
        raw = str(form.get("hours") or "").strip()
        if not raw:
            raise ConfigError("give the hours until the server shuts down, or tick 'no limit'",
                              where="hours")
        try:
            hours = float(raw)
        except ValueError:
            raise ConfigError(f"hours must be a number, got {raw!r}", where="hours") from None
        if not hours > 0 or hours > MAX_HOURS:
            raise ConfigError(f"hours must be more than 0 and at most {MAX_HOURS} (30 days), got {raw}; "
                              "tick 'no limit' for a server that never stops", where="hours")
    data: dict[str, Any] = {"kind": kind, "ui": ui, "hours": hours, "idle": idle_from_form(form)}
    if kind == "spark":
        spark: dict[str, Any] = {
            "driver_memory": str(form.get("driver_memory") or "").strip(),
            "executor_memory": str(form.get("executor_memory") or "").strip(),
            "driver_cores": _int(form, "driver_cores", "driver cores"),
            "executor_cores": _int(form, "executor_cores", "executor cores"),
            "executors": _int(form, "executors", "executors"),
            "dynamic_allocation": bool(form.get("dynamic_allocation")),
            "properties": parse_properties(str(form.get("properties") or "")),
        }
        if spark["dynamic_allocation"]:
            spark["min_executors"] = _int(form, "min_executors", "minimum executors")
            spark["max_executors"] = _int(form, "max_executors", "maximum executors")
        data["spark"] = spark
    return parse_config(data).model_dump(mode="json")


# --- the page --------------------------------------------------------------------------------------

def _start_job(request: Request, project_id: int) -> Job | None:
    jobs = jobs_of(request)
    job = jobs.latest(project_id, "start")
    return job


def page_context(request: Request, project_id: int) -> dict[str, Any]:
    dash = dashboard_of(request)
    manager = dash.servers
    project = get_project(request, project_id)
    me = identity_of(request).user
    status = manager.status(project_id, kernels=True, user=me)  # my newest server, running or not
    others = [o for o in servers_seen_by(dash.store, me, manager.list()) if o["user"] != me.name
              and (o.get("project") or {}).get("id") == project_id] if me is not None else []
    recent = manager.recent(project_id, user=me)
    env = env_status(request, project)
    job = _start_job(request, project_id)
    problems, working = project_files(project)
    fields = form_fields(status.get("config"), dash.settings.default_hours)
    if status["state"] == "running":  # the limit in force, Extends included (the form is read-only then)
        hours = limit_hours(status)
        fields.update(hours="" if hours is None else f"{hours:g}", no_limit=hours is None)
    return {"project": project, "status": status, "others": others, "recent": recent, "env": env,
            "problems": problems, "working": working,
            "fields": fields, "job": job.to_dict() if job else None,
            "extend_hours": fmt_hours(dash.settings.extend_hours), "section": "jupyter"}


def project_files(project: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The project's broken files and the run configurations (kernels) that still work."""
    from labwork.project.files import load_project
    try:
        loaded = load_project(project["path"])
    except LabworkError as exc:  # labwork.toml itself: no kernel works until it is fixed
        return [{"where": exc.where, "msg": exc.message, "name": None}], []
    return file_problems(loaded), sorted(loaded.runconfigs)


def env_status(request: Request, project: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
    dash = dashboard_of(request)
    try:
        return dash.env_checks.status(project["path"], dash.settings, force=force)
    except LabworkError as exc:
        return {"state": "done", "environments": [], "conflicts": [], "jupyter_breaking": 0,
                "unprepared": [], "errors": [error_text(exc)]}


async def _spark_sessions(request: Request, project: dict[str, Any]) -> dict[str, Any]:
    try:
        sessions = livy.listing(request, "sessions")
    except Exception as exc:  # the gateway's trouble must not break the service page
        return {"available": False, "sessions": [], "error": str(exc)}
    return {"available": True, "sessions": livy.project_sessions(sessions, project["path"])}


def extend_notice(status: dict[str, Any], hours: float) -> str:
    """Extend's answer, with the limit and deadline as the server card shows them."""
    if status.get("state") != "running":
        return "Time limit extended."
    if status.get("no_limit"):
        return "Time limit removed: the server runs until it is stopped."
    return (f"Time limit extended by {fmt_hours(hours)}: {time_limit(status)} in all, "
            f"shuts down at {fmt_time(status.get('deadline'))}.")


async def _render_page(request: Request, project_id: int, *, status_code: int = 200,
                       error: str | None = None, notice: str | None = None,
                       fields: dict[str, Any] | None = None, ok: str | None = None) -> Response:
    data = await run_in_threadpool(page_context, request, project_id)
    if ok == "extended":
        notice = extend_notice(data["status"], dashboard_of(request).settings.extend_hours)
    data["spark"] = await _spark_sessions(request, data["project"])
    if fields is not None:
        data["fields"] = fields
    return render(request, "jupyter.html", status_code=status_code, error=error, notice=notice, **data)


@router.get("/projects/{project_id:int}/jupyter")
async def jupyter(request: Request, project_id: int, ok: str | None = None,
                  _auth: None = Depends(page_auth)) -> Response:
    return await _render_page(request, project_id, notice=NOTICES.get(ok or ""), ok=ok)


@router.get("/projects/{project_id:int}/jupyter/state.json", dependencies=[Depends(json_auth)])
def state_json(request: Request, project_id: int) -> JSONResponse:
    """What the page polls: the server's state, time left, the start job's progress, the log's tail."""
    from labwork.processes import tail
    status = _manager(request).status(project_id, kernels=False, user=identity_of(request).user)
    job = _start_job(request, project_id)
    log_tail = "\n".join(tail(status["log_path"], 12)) if status.get("log_path") and status["state"] == "starting" else ""
    return JSONResponse({"state": status["state"], "server_id": status["id"],
                         "seconds_left": status["seconds_left"], "no_limit": status["no_limit"],
                         "deadline": status["deadline"], "job": job.to_dict() if job else None,
                         "log_tail": log_tail}, headers={"Cache-Control": "no-store"})


# --- actions ---------------------------------------------------------------------------------------

@router.post("/projects/{project_id:int}/jupyter/start")
async def start(request: Request, project_id: int, form: dict = Depends(form_auth)) -> Response:
    posted = {**form_fields(None, dashboard_of(request).settings.default_hours),
              **{k: v for k, v in form.items() if isinstance(v, str)},
              "no_limit": bool(form.get("no_limit")), "dynamic_allocation": bool(form.get("dynamic_allocation"))}
    try:
        config = config_from_form(form)
    except ConfigError as exc:  # the form again, the error beside its field
        return await _render_page(request, project_id, status_code=400, fields=posted,
                                  error=f"Not started: {error_text(exc)}")
    manager = _manager(request)
    project = await run_in_threadpool(get_project, request, project_id)
    user = identity_of(request).user  # whose server; its kernels get their personal token
    status = await run_in_threadpool(functools.partial(manager.status, project_id, kernels=False, user=user))
    if status["state"] in ("starting", "running", "stopping"):
        return await _render_page(request, project_id, status_code=409, fields=posted,
                                  error=f"Not started: the server is already {status['state']}. To change "
                                        "the configuration, stop it first.")
    ui = "JupyterLab" if config["ui"] == "lab" else "Jupyter Notebook (classic UI)"
    limit = "no time limit" if config["hours"] is None else f"{config['hours']:g} h"
    if config.get("idle"):
        from labwork.units import format_seconds
        limit += f", stops when idle for {format_seconds(config['idle'])}"

    def work(job: Job) -> dict[str, Any]:
        job.progress(f"starting {ui} for {project['name']}: {config['kind']} configuration, {limit}")
        result = manager.start(project_id, config, user=user)
        job.progress(f"server running at {result.get('base_url')}")
        return {"state": result.get("state"), "server_id": result.get("id")}

    jobs_of(request).start("start", project_id, f"Start {ui}", work)
    return RedirectResponse(f"/projects/{project_id}/jupyter", status_code=303)


@router.post("/projects/{project_id:int}/jupyter/stop", dependencies=[Depends(fails_as("Not stopped"))])
async def stop(request: Request, project_id: int, form: dict = Depends(form_auth)) -> Response:
    """Stop my server, or (an owner's or administrator's) another member's named by `user`."""
    me = current_user(request)
    name = str(form.get("user") or "") or None
    whose = await run_in_threadpool(whose_server, dashboard_of(request).store, me, project_id, name)
    by = "stopped from the dashboard" + (f" by {me.name}" if whose.name != me.name else "")
    await run_in_threadpool(functools.partial(_manager(request).stop, project_id, by, user=whose))
    return RedirectResponse(f"/projects/{project_id}/jupyter?ok=stopped", status_code=303)


@router.post("/projects/{project_id:int}/jupyter/extend", dependencies=[Depends(fails_as("Not extended"))])
async def extend(request: Request, project_id: int, _form: dict = Depends(form_auth)) -> Response:
    hours = dashboard_of(request).settings.extend_hours
    await run_in_threadpool(functools.partial(_manager(request).extend, project_id, hours,
                                              user=identity_of(request).user))
    return RedirectResponse(f"/projects/{project_id}/jupyter?ok=extended", status_code=303)


def open_in_jupyter(request: Request, project_id: int, notebook: str) -> Response:
    """Validate the notebook, then open it in a job (it may start the server); the new tab shows
    progress and goes on to the notebook."""
    from labwork.notebooks.preview import notebook_in_project
    manager = _manager(request)
    project = get_project(request, project_id)
    root = Path(project["path"]).resolve()
    rel = notebook_in_project(root, notebook).relative_to(root).as_posix()
    user = identity_of(request).user

    def work(job: Job) -> dict[str, Any]:
        job.progress(f"opening {rel}; the server is started with the configuration it last ran with "
                     "when none runs")
        result = manager.open_notebook(project_id, rel, user=user)
        if result.get("started"):
            job.progress("server started")
        # through the control plane: the browser never holds the server's token
        return {"url": result.get("proxy_url") or result["url"], "note": result.get("note"), "notebook": rel}

    job = jobs_of(request).start(f"open:{rel}", project_id, f"Open {rel}", work)
    return RedirectResponse(f"/projects/{project_id}/jupyter/opening/{job.id}", status_code=303)


@router.post("/projects/{project_id:int}/jupyter/open", dependencies=[Depends(fails_as("Not opened"))])
def open_notebook(request: Request, project_id: int, form: dict = Depends(form_auth)) -> Response:
    return open_in_jupyter(request, project_id, str(form.get("notebook") or ""))


@router.get("/projects/{project_id:int}/jupyter/opening/{job_id}")
def opening(request: Request, project_id: int, job_id: str, _auth: None = Depends(page_auth)) -> Response:
    job = jobs_of(request).get(job_id)
    if job is None or job.project_id != project_id:
        return message_page(request, "Open in Jupyter", "No such request (it may be from before the control "
                                                       "plane restarted).", 404)
    project = get_project(request, project_id)
    return render(request, "opening.html", project=project, job=job.to_dict(), section="jupyter")


# --- logs ---------------------------------------------------------------------------------------------

def _server_id(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"server must be a number, got {value!r}", where="server") from None


@router.get("/projects/{project_id:int}/jupyter/logs.json", dependencies=[Depends(json_auth)])
def logs_json(request: Request, project_id: int, server: str | None = None, offset: int = -1) -> JSONResponse:
    """Log text from `offset` (-1: the last LOG_WINDOW bytes); call again with the answer's offset."""
    manager = _manager(request)
    sid = _server_id(server)
    me = identity_of(request).user
    if offset < 0:
        size = manager.log_file(project_id, sid, user=me).stat().st_size
        offset = max(0, size - LOG_WINDOW)
        if offset:  # start at a line boundary
            with open(manager.log_file(project_id, sid, user=me), "rb") as fh:
                fh.seek(offset)
                offset += len(fh.readline())
    out = manager.logs(project_id, sid, offset, user=me)
    return JSONResponse(out, headers={"Cache-Control": "no-store"})


@router.get("/projects/{project_id:int}/jupyter/logs")
def logs_page(request: Request, project_id: int, server: str | None = None,
              _auth: None = Depends(page_auth)) -> Response:
    manager = _manager(request)
    project = get_project(request, project_id)
    history = manager.history(project_id, user=identity_of(request).user)
    sid = _server_id(server)
    if sid is not None and not any(h["id"] == sid for h in history):
        raise NotFound(f"no server {sid} in project '{project['name']}'")
    chosen = sid if sid is not None else (history[0]["id"] if history else None)
    return render(request, "logs.html", project=project, history=history, server_id=chosen, section="jupyter")


@router.get("/projects/{project_id:int}/jupyter/logs/download")
def logs_download(request: Request, project_id: int, server: str | None = None,
                  _auth: None = Depends(page_auth)) -> Response:
    path = _manager(request).log_file(project_id, _server_id(server), user=identity_of(request).user)
    return FileResponse(path, media_type="text/plain; charset=utf-8", filename=f"jupyter-server-{path.stem}.log")


# --- the environment check -----------------------------------------------------------------------------

@router.get("/projects/{project_id:int}/environment/alert",
            dependencies=[Depends(fails_as(fragment=True)), Depends(json_auth)])
def env_alert(request: Request, project_id: int) -> HTMLResponse:
    """The alert box's HTML, polled while the check runs."""
    project = get_project(request, project_id)
    html = render_fragment("env_alert.html", project=project, env=env_status(request, project))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/projects/{project_id:int}/environment")
def env_page(request: Request, project_id: int, _auth: None = Depends(page_auth)) -> Response:
    project = get_project(request, project_id)
    return render(request, "environment.html", project=project, env=env_status(request, project),
                  section="jupyter")


@router.post("/projects/{project_id:int}/environment/check")
def env_recheck(request: Request, project_id: int, _form: dict = Depends(form_auth)) -> Response:
    project = get_project(request, project_id)
    env_status(request, project, force=True)
    return RedirectResponse(f"/projects/{project_id}/environment", status_code=303)
