"""Project › Compute: compute targets and run configurations; attach, detach, and Prepare (the
`experiment prepare` build of a run configuration's environment) with progress."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from labwork.dashboard.auth import csrf_token, form_auth, json_auth, page_auth
from labwork.dashboard.jobs import Job, jobs_of
from labwork.dashboard.web import FORM_ERRORS, dashboard_of, error_text, fails_as, file_problems, get_project, render, render_fragment
from labwork.errors import ConfigError, LabworkError

router = APIRouter()

NOTICES = {"attached": "Compute target attached (with a run configuration of the same name).",
           "detached": "Compute target detached (with its run configurations)."}

# The options the attach form offers per kind (the CLI's `computetarget attach` flags).
KIND_OPTIONS: dict[str, list[tuple[str, str]]] = {
    "local": [],
    "spark": [("master", "Master (local[*], spark://HOST:PORT, yarn, k8s://URL)"), ("via", "Via (kernel or livy)")],
    "livy": [("url", "Livy URL"), ("auth", "Auth (none, basic, kerberos)"), ("username", "User name"),
             ("password_env", "Password: name of an environment variable")],
    "docker": [("image", "Base image (python:3.11-slim)"), ("memory", "Memory limit (512m, 2g)"),
               ("cpus", "CPUs (1, 0.5)"), ("docker_host", "Docker daemon (unix://, tcp://, ssh://user@vm)"),
               ("user", "Container user uid[:gid]")],
    "remote": [("host", "Host"), ("user", "User"), ("port", "Port"), ("key_file", "Key file"),
               ("python", "Python on the host")],
}


def _environment(loaded: Any, name: str, settings: Any) -> dict[str, Any]:
    from labwork.kernels.environments import environment_for
    try:
        kind = loaded.target_of(loaded.runconfigs[name]).type
        if kind == "docker":  # an image on the target's daemon
            from labwork.kernels.docker_images import image_plan
            plan = image_plan(loaded, name, settings)
            return {"prepared": plan.prepared, "current": False, "python": plan.tag}
        if kind == "remote":  # a virtual environment on the host
            from labwork.kernels.remote_envs import remote_plan
            rplan = remote_plan(loaded, name, settings)
            return {"prepared": rplan.prepared, "current": False,
                    "python": f"{rplan.ssh.host}:{rplan.venv}" if rplan.prepared else rplan.ssh.host}
        env = environment_for(loaded, name, settings)
        return {"prepared": env.prepared, "current": env.is_current, "python": env.python}
    except LabworkError as exc:
        return {"prepared": False, "current": False, "error": error_text(exc)}


def runconfig_view(request: Request, project_id: int, loaded: Any, name: str) -> dict[str, Any]:
    """What one run configuration's rows show (the page and the rows' refresh after Prepare)."""
    job = jobs_of(request).latest(project_id, f"prepare:{name}")
    return {"name": name, "rc": loaded.runconfigs[name].model_dump(mode="json"),
            "env": _environment(loaded, name, dashboard_of(request).settings), "job": job.to_dict() if job else None,
            "default": name == loaded.default_runconfig}


def _states(request: Request, loaded: Any, *, refresh: bool = False) -> dict[str, Any]:
    """Docker/remote targets: daemon or host reachable, and the kernels running there (cached,
    probed in the background: labwork.dashboard.targetcache)."""
    dash = dashboard_of(request)
    return dash.target_states.states(loaded, dash.settings.target_state_s, force=refresh)


def _context(request: Request, project_id: int, *, refresh: bool = False) -> dict[str, Any]:
    from labwork.project.files import load_project
    project = get_project(request, project_id)
    loaded = load_project(project["path"])
    desc = {  # as labwork.project.describe.describe_project, from the project loaded once
        "default_runconfig": loaded.default_runconfig,
        "targets": {n: t.model_dump(mode="json") for n, t in sorted(loaded.targets.items())},
        "problems": file_problems(loaded),
        "states": _states(request, loaded, refresh=refresh),
    }
    rows = [runconfig_view(request, project_id, loaded, name) for name in sorted(loaded.runconfigs)]
    return {"project": project, "desc": desc, "rows": rows, "kinds": KIND_OPTIONS, "section": "compute",
            "settings_target_state_s": dashboard_of(request).settings.target_state_s}


def _page(request: Request, project_id: int, *, status: int = 200, error: str | None = None,
          notice: str | None = None, attach: dict[str, Any] | None = None, refresh: bool = False) -> Response:
    data = _context(request, project_id, refresh=refresh)
    return render(request, "compute.html", status_code=status, error=error, notice=notice,
                  attach=attach or {"kind": "spark"}, **data)


@router.get("/projects/{project_id:int}/compute")
def compute(request: Request, project_id: int, ok: str | None = None, refresh: bool = False,
            _auth: None = Depends(page_auth)) -> Response:
    return _page(request, project_id, notice=NOTICES.get(ok or ""), refresh=refresh)


@router.get("/projects/{project_id:int}/compute/states.json", dependencies=[Depends(json_auth)])
def target_states(request: Request, project_id: int) -> JSONResponse:
    """The targets' states as far as known (the page polls it while a probe runs)."""
    from labwork.project.files import load_project
    loaded = load_project(get_project(request, project_id)["path"])
    return JSONResponse(_states(request, loaded), headers={"Cache-Control": "no-store"})


@router.get("/projects/{project_id:int}/compute/runconfigs/{name}/rows",
            dependencies=[Depends(fails_as(fragment=True)), Depends(json_auth)])
def runconfig_rows(request: Request, project_id: int, name: str) -> HTMLResponse:
    """One run configuration's table rows, as the page renders them: the page's script swaps them
    in when a Prepare finishes, so the row says 'prepared' without a reload."""
    from labwork.project.files import load_project
    project = get_project(request, project_id)
    loaded = load_project(project["path"])
    loaded.runconfig(name)  # unknown or broken: NotFound / ConfigError with the reason
    row = runconfig_view(request, project_id, loaded, name)
    html = render_fragment("runconfig_rows.html", r=row, project=project, csrf=csrf_token(request))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.post("/projects/{project_id:int}/compute/attach", dependencies=[Depends(fails_as("Not attached"))])
def attach(request: Request, project_id: int, form: dict = Depends(form_auth)) -> Response:
    from labwork.project.files import attach_target
    kind = str(form.get("kind") or "")
    name = str(form.get("name") or "").strip()
    framework = str(form.get("framework") or "").strip() or None
    options: dict[str, Any] = {}
    for key, _label in KIND_OPTIONS.get(kind, []):
        value = str(form.get(f"{kind}.{key}") or "").strip()
        if value:
            options[key] = value
    project = get_project(request, project_id)
    try:
        if kind not in KIND_OPTIONS:
            raise ConfigError(f"unknown compute target kind {kind!r}; expected one of {', '.join(KIND_OPTIONS)}",
                              where="kind")
        if not name:
            raise ConfigError("give the compute target a name", where="name")
        if "port" in options:
            try:
                options["port"] = int(options["port"])
            except ValueError:
                raise ConfigError(f"port must be a number, got {options['port']!r}", where="port") from None
        attach_target(project["path"], kind, name, options, framework=framework)
    except FORM_ERRORS as exc:  # the form again, the error beside it; other errors: the boundary
        return _page(request, project_id, status=exc.http_status,
                     error=f"Not attached: {error_text(exc)}", attach=dict(form))
    return RedirectResponse(f"/projects/{project_id}/compute?ok=attached", status_code=303)


@router.post("/projects/{project_id:int}/compute/detach", dependencies=[Depends(fails_as("Not detached"))])
def detach(request: Request, project_id: int, form: dict = Depends(form_auth)) -> Response:
    from labwork.project.files import detach_target
    name = str(form.get("name") or "").strip()
    project = get_project(request, project_id)
    try:
        detach_target(project["path"], name)
    except FORM_ERRORS as exc:
        return _page(request, project_id, status=exc.http_status, error=f"Not detached: {error_text(exc)}")
    return RedirectResponse(f"/projects/{project_id}/compute?ok=detached", status_code=303)


@router.post("/projects/{project_id:int}/compute/prepare", dependencies=[Depends(fails_as("Not prepared"))])
def prepare(request: Request, project_id: int, form: dict = Depends(form_auth)) -> Response:
    from labwork.kernels.environments import environment_for
    from labwork.kernels.prepare import prepare_runconfig
    from labwork.project.files import load_project
    rc_name = str(form.get("runconfig") or "").strip()
    settings = dashboard_of(request).settings
    project_row = get_project(request, project_id)
    try:
        project = load_project(project_row["path"])
        if not rc_name:
            raise ConfigError("choose a run configuration to prepare", where="runconfig")
        project.runconfig(rc_name)  # an unknown or broken one stops here, with its reason
        environment_for(project, rc_name, settings)  # a missing requirements file too
    except FORM_ERRORS as exc:
        return _page(request, project_id, status=exc.http_status, error=f"Not prepared: {error_text(exc)}")

    def work(job: Job) -> dict[str, Any]:
        return {"python": prepare_runconfig(project, rc_name, settings, job.progress), "prepared": True}

    jobs_of(request).start(f"prepare:{rc_name}", project_id, f"Prepare {rc_name}", work)
    return RedirectResponse(f"/projects/{project_id}/compute#prepare-{rc_name}", status_code=303)
