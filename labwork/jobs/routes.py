"""/api/projects/{ref}/jobs…: thin routes, each calling one `Jobs` method (shapes in docs/jobs.md).

    GET    /api/projects/{ref}/jobs                      list
    POST   /api/projects/{ref}/jobs                      create
    GET    /api/projects/{ref}/jobs/{name}               show (with its latest runs)
    PATCH  /api/projects/{ref}/jobs/{name}               update (enable/disable the schedule, edit)
    DELETE /api/projects/{ref}/jobs/{name}               delete
    POST   /api/projects/{ref}/jobs/{name}/runs          run now (parameters override the job's)
    GET    /api/projects/{ref}/jobs/{name}/runs          its runs, newest first
    GET    /api/projects/{ref}/jobs/runs/{run}           one run
    POST   /api/projects/{ref}/jobs/runs/{run}/cancel    cancel it
    GET    /api/projects/{ref}/jobs/runs/{run}/logs      its log from ?offset=
    GET    /api/projects/{ref}/jobs/runs/{run}/output    its output notebook (.ipynb)
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from labwork.inputs import MAX_ID
from labwork.jobs.library import Jobs
from labwork.auth.identity import require_token
from labwork.http_params import OffsetQuery



class JobFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notebook: str | None = None
    runconfig: str | None = None
    config: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    schedule: str | None = None
    timezone: str | None = None
    enabled: bool | None = None
    missed: str | None = Field(None, description="run_once | skip: what a fire time missed while down does")
    timeout: str | float | None = Field(None, description="'2h', '90s' or seconds")
    retries: int | None = None
    retry_delay: str | float | None = None
    max_concurrent: int | None = None
    webhook_url: str | None = None
    notify_success: bool | None = None


class CreateBody(JobFields):
    name: str
    notebook: str


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parameters: dict[str, Any] | None = None


def router(jobs: Jobs) -> APIRouter:
    """The jobs API over `jobs` (no lookups: the object is passed in)."""
    r = APIRouter(prefix="/api/projects/{ref}/jobs", tags=["jobs"], dependencies=[Depends(require_token)])

    @r.get("")
    def list_jobs(ref: str) -> list[dict[str, Any]]:
        return jobs.list(ref)

    @r.post("", status_code=201)
    def create_job(ref: str, body: CreateBody) -> dict[str, Any]:
        fields = body.model_dump(exclude_unset=True, exclude={"name", "notebook"})
        return jobs.create(ref, body.name, body.notebook, **fields)

    @r.get("/runs/{run_id}")
    def show_run(ref: str, run_id: int = _run_id()) -> dict[str, Any]:
        return jobs.run_show(ref, run_id)

    @r.post("/runs/{run_id}/cancel")
    def cancel_run(ref: str, run_id: int = _run_id()) -> dict[str, Any]:
        return jobs.cancel(ref, run_id)

    @r.get("/runs/{run_id}/logs")
    def run_logs(ref: str, run_id: int = _run_id(), offset: OffsetQuery = 0) -> dict[str, Any]:
        return jobs.logs(ref, run_id, offset)

    @r.get("/runs/{run_id}/output")
    def run_output(ref: str, run_id: int = _run_id()) -> FileResponse:
        path = jobs.output_path(ref, run_id)
        return FileResponse(path, media_type="application/x-ipynb+json", filename=f"run-{run_id}-{path.name}")

    @r.get("/{name}")
    def show_job(ref: str, name: str) -> dict[str, Any]:
        return jobs.show(ref, name)

    @r.patch("/{name}")
    def update_job(ref: str, name: str, body: JobFields) -> dict[str, Any]:
        return jobs.update(ref, name, **body.model_dump(exclude_unset=True))

    @r.delete("/{name}")
    def delete_job(ref: str, name: str) -> dict[str, Any]:
        return jobs.delete(ref, name)

    @r.post("/{name}/runs", status_code=201)
    def run_job(ref: str, name: str, body: RunBody | None = None) -> dict[str, Any]:
        return jobs.run(ref, name, body.parameters if body else None)

    @r.get("/{name}/runs")
    def job_runs(ref: str, name: str, limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        return jobs.runs(ref, name, limit)

    return r


def _run_id():  # noqa: ANN202 - a FastAPI Path parameter
    from fastapi import Path
    return Path(ge=0, le=MAX_ID, description="a job run's id")
