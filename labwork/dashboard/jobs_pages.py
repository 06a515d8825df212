"""Project › Jobs: the project's jobs (next run, last status, Run now with parameters, enable or
disable the schedule, edit, delete), the create form ("Run as job" from Notebooks and Recent
notebooks opens it with the notebook chosen), and a job run's page (status, parameters, duration,
log, the output notebook in the same sanitized preview as Notebooks, a link to its run history).

Thin: each route calls one `labwork.jobs.library.Jobs` method; `router(jobs)` is given the object.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from labwork.dashboard.auth import form_auth, page_auth
from labwork.dashboard.web import FORM_ERRORS, error_text, fails_as, get_project, render
from labwork.errors import ConfigError, LabworkError
from labwork.jobs.library import Jobs
from labwork.jobs.params import parse_text

NOTICES = {"created": "Job created.", "updated": "Job saved.", "deleted": "Job deleted.",
           "enabled": "Schedule enabled.", "disabled": "Schedule disabled."}
FORM_FIELDS = ("notebook", "runconfig", "kind", "parameters", "schedule", "timezone", "missed", "timeout",
               "retries", "retry_delay", "max_concurrent", "webhook_url")  # an error there shows beside it
TEXT_FIELDS = ("notebook", "runconfig", "schedule", "timezone", "timeout", "retry_delay", "webhook_url", "missed")


def _fields(form: dict[str, Any]) -> dict[str, Any]:
    """The create/edit form as `Jobs.create`/`update` fields (blank = not given)."""
    out: dict[str, Any] = {}
    for key in TEXT_FIELDS:
        value = str(form.get(key) or "").strip()
        out[key] = value or None
    out["parameters"] = parse_text(str(form.get("parameters") or ""), "parameters")
    kind = str(form.get("kind") or "").strip()
    if kind:
        if kind not in ("python", "spark"):
            raise ConfigError(f"configuration must be python or spark, got {kind!r}", where="configuration")
        out["config"] = {"kind": kind}
    for key in ("retries", "max_concurrent"):
        value = str(form.get(key) or "").strip()
        if value:
            try:
                out[key] = int(value)
            except ValueError:
                raise ConfigError(f"{key} must be a whole number, got {value!r}", where=key) from None
    out["notify_success"] = bool(form.get("notify_success"))
    out["timezone"] = out["timezone"] or "UTC"
    out["missed"] = out["missed"] or "run_once"
    return out


def _same_kind(config: dict[str, Any] | None, current: dict[str, Any] | None) -> bool:
    return config is not None and config.get("kind") == (current or {}).get("kind")


def _field_error(exc: LabworkError | None) -> dict[str, Any]:
    """Which form field an error is about (its `where`), and what to say beside it."""
    if exc is None or exc.where not in FORM_FIELDS:
        return {"field_error_at": None, "field_error_text": None}
    hint = exc.hint_for("dashboard")
    return {"field_error_at": exc.where, "field_error_text": exc.message + (f" (hint: {hint})" if hint else "")}


def _params_text(params: dict[str, Any]) -> str:
    import json
    return "\n".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in params.items())


def router(jobs: Jobs) -> APIRouter:
    r = APIRouter()

    def page(request: Request, project_id: int, *, status: int = 200, error: str | None = None,
             notice: str | None = None, form: dict[str, Any] | None = None, editing: str | None = None,
             failed: LabworkError | None = None) -> Response:
        from labwork.notebooks.preview import list_notebooks
        from labwork.project.files import load_project
        project = get_project(request, project_id)
        loaded = load_project(project["path"])
        return render(request, "jobs.html", status_code=status, error=error, notice=notice, project=project,
                      section="jobs", jobs=jobs.list(project_id), notebooks=list_notebooks(project["path"]),
                      runconfigs=sorted(loaded.runconfigs), form=form or {}, editing=editing,
                      **_field_error(failed))

    @r.get("/projects/{project_id:int}/jobs")
    def jobs_page(request: Request, project_id: int, ok: str | None = None, notebook: str | None = None,
                  _auth: None = Depends(page_auth)) -> Response:
        return page(request, project_id, notice=NOTICES.get(ok or ""),
                    form={"notebook": notebook, "name": _suggest(notebook)} if notebook else None)

    @r.post("/projects/{project_id:int}/jobs", dependencies=[Depends(fails_as("Not created"))])
    def create(request: Request, project_id: int, form: dict = Depends(form_auth)) -> Response:
        try:
            fields = _fields(form)
            notebook = fields.pop("notebook") or ""
            if not notebook:
                raise ConfigError("choose a notebook", where="notebook")
            jobs.create(project_id, str(form.get("name") or "").strip(), notebook, **fields)
        except FORM_ERRORS as exc:
            return page(request, project_id, status=exc.http_status, error=f"Not created: {error_text(exc)}",
                        form=dict(form), failed=exc)
        return RedirectResponse(f"/projects/{project_id}/jobs?ok=created", status_code=303)

    @r.get("/projects/{project_id:int}/jobs/{name}/edit")
    def edit_page(request: Request, project_id: int, name: str, _auth: None = Depends(page_auth)) -> Response:
        job = jobs.show(project_id, name)
        form = {k: job.get(k) for k in ("name", "notebook", "runconfig", "schedule", "timezone", "missed",
                                        "retries", "max_concurrent", "webhook_url", "notify_success")}
        form |= {"kind": (job["config"] or {}).get("kind"), "parameters": _params_text(job["parameters"]),
                 "timeout": f"{job['timeout_s']:g}s" if job["timeout_s"] else "",
                 "retry_delay": f"{job['retry_delay_s']:g}s"}
        return page(request, project_id, form=form, editing=name)

    @r.post("/projects/{project_id:int}/jobs/{name}/edit", dependencies=[Depends(fails_as("Not saved"))])
    def edit(request: Request, project_id: int, name: str, form: dict = Depends(form_auth)) -> Response:
        try:
            fields = _fields(form)
            if not fields["schedule"]:
                fields["schedule"] = None
            if _same_kind(fields.get("config"), jobs.show(project_id, name)["config"]):
                fields.pop("config")  # the form has only the kind: keep the job's Spark settings
            jobs.update(project_id, name, **fields)
        except FORM_ERRORS as exc:
            return page(request, project_id, status=exc.http_status, error=f"Not saved: {error_text(exc)}",
                        form=dict(form) | {"name": name}, editing=name, failed=exc)
        return RedirectResponse(f"/projects/{project_id}/jobs?ok=updated", status_code=303)

    @r.post("/projects/{project_id:int}/jobs/{name}/run", dependencies=[Depends(fails_as("Not started"))])
    def run_now(request: Request, project_id: int, name: str, form: dict = Depends(form_auth)) -> Response:
        try:
            run = jobs.run(project_id, name, parse_text(str(form.get("parameters") or ""), "parameters"))
        except FORM_ERRORS as exc:
            return page(request, project_id, status=exc.http_status, error=f"Not started: {error_text(exc)}")
        return RedirectResponse(f"/projects/{project_id}/jobs/runs/{run['id']}", status_code=303)

    @r.post("/projects/{project_id:int}/jobs/{name}/toggle", dependencies=[Depends(fails_as("Not changed"))])
    def toggle(request: Request, project_id: int, name: str, form: dict = Depends(form_auth)) -> Response:
        on = str(form.get("enabled") or "") == "1"
        jobs.update(project_id, name, enabled=on)
        return RedirectResponse(f"/projects/{project_id}/jobs?ok={'enabled' if on else 'disabled'}", status_code=303)

    @r.post("/projects/{project_id:int}/jobs/{name}/delete", dependencies=[Depends(fails_as("Not deleted"))])
    def delete(request: Request, project_id: int, name: str, form: dict = Depends(form_auth)) -> Response:
        jobs.delete(project_id, name)
        return RedirectResponse(f"/projects/{project_id}/jobs?ok=deleted", status_code=303)

    @r.get("/projects/{project_id:int}/jobs/runs/{run_id:int}")
    def run_page(request: Request, project_id: int, run_id: int, _auth: None = Depends(page_auth)) -> Response:
        project = get_project(request, project_id)
        run = jobs.run_show(project_id, run_id)
        try:
            log = jobs.logs(project_id, run_id)["text"]
        except FORM_ERRORS:
            log = ""
        return render(request, "job_run.html", project=project, section="jobs", run=run, log=log[-200_000:])

    @r.post("/projects/{project_id:int}/jobs/runs/{run_id:int}/cancel", dependencies=[Depends(fails_as("Not cancelled"))])
    def cancel(request: Request, project_id: int, run_id: int, form: dict = Depends(form_auth)) -> Response:
        jobs.cancel(project_id, run_id)
        return RedirectResponse(f"/projects/{project_id}/jobs/runs/{run_id}", status_code=303)

    @r.get("/projects/{project_id:int}/jobs/runs/{run_id:int}/output.ipynb")
    def output_download(request: Request, project_id: int, run_id: int, _auth: None = Depends(page_auth)) -> Response:
        from fastapi.responses import FileResponse
        path = jobs.output_path(project_id, run_id)
        return FileResponse(path, media_type="application/x-ipynb+json", filename=f"run-{run_id}-{path.name}")

    @r.get("/projects/{project_id:int}/jobs/runs/{run_id:int}/output.html")
    def output_preview(request: Request, project_id: int, run_id: int, _auth: None = Depends(page_auth)) -> Response:
        """The output notebook as the Notebooks page shows notebooks: sanitized, loading nothing."""
        from labwork.notebooks.preview import PREVIEW_CSP, render_preview
        path = jobs.output_path(project_id, run_id)
        html = render_preview(path, path.parent)
        return HTMLResponse(html, headers={"Content-Security-Policy": PREVIEW_CSP, "X-Content-Type-Options": "nosniff",
                                           "Cache-Control": "no-store"})

    return r


def _suggest(notebook: str | None) -> str:
    """A job name from a notebook's file name ('reports/daily sales.ipynb' -> 'daily-sales')."""
    import re
    stem = (notebook or "").rsplit("/", 1)[-1].removesuffix(".ipynb")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "job"
