"""Long actions started from the dashboard (a server start, an environment build, opening a notebook
that needs a server) run in a background thread; the page polls `/jobs/{id}.json` for progress.

Jobs live in memory (`Dashboard.jobs`); one runs at a time per (project, kind), a
second request for the same one joins it.
"""
from __future__ import annotations

import secrets
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from labwork.dashboard.auth import json_auth
from labwork.errors import LabworkError, NotFound

MAX_LINES = 400
KEEP_FINISHED = 200


@dataclass
class Job:
    id: str
    kind: str
    project_id: int | None
    title: str
    state: str = "running"  # running | done | failed
    lines: deque = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    total_lines: int = 0
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None

    def progress(self, line: str) -> None:
        self.lines.append(str(line)[:2000])
        self.total_lines += 1

    def to_dict(self, since: int = 0) -> dict[str, Any]:
        lines = list(self.lines)
        first = self.total_lines - len(lines)  # number of the first line still kept
        start = max(0, since - first)
        return {"id": self.id, "kind": self.kind, "project_id": self.project_id, "title": self.title,
                "state": self.state, "lines": lines[start:], "next": self.total_lines,
                "result": self.result if self.state == "done" else None, "error": self.error,
                "elapsed": round((self.ended or time.time()) - self.started, 1)}


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def running(self, project_id: int | None, kind: str) -> Job | None:
        with self._lock:
            for job in self._jobs.values():
                if job.project_id == project_id and job.kind == kind and job.state == "running":
                    return job
        return None

    def latest(self, project_id: int | None, kind: str) -> Job | None:
        with self._lock:
            found = [j for j in self._jobs.values() if j.project_id == project_id and j.kind == kind]
        return max(found, key=lambda j: j.started) if found else None

    def start(self, kind: str, project_id: int | None, title: str,
              work: Callable[[Job], Any], *, join: bool = True) -> Job:
        with self._lock:
            if join:
                for job in self._jobs.values():
                    if job.project_id == project_id and job.kind == kind and job.state == "running":
                        return job
            job = Job(id=secrets.token_urlsafe(9), kind=kind, project_id=project_id, title=title)
            self._jobs[job.id] = job
            self._prune()
        threading.Thread(target=self._run, args=(job, work), name=f"dashboard-{kind}", daemon=True).start()
        return job

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        try:
            job.result = work(job)
            job.state = "done"
        except LabworkError as exc:
            from labwork.dashboard.web import error_text
            job.error = error_text(exc)
            job.progress(f"failed: {job.error}")
            job.state = "failed"
        except Exception as exc:  # a bug must still end the job visibly
            job.error = f"{type(exc).__name__}: {exc}"
            job.progress(traceback.format_exc(limit=5))
            job.state = "failed"
        finally:
            job.ended = time.time()

    def _prune(self) -> None:
        done = sorted((j for j in self._jobs.values() if j.state != "running"), key=lambda j: j.started)
        for job in done[:-KEEP_FINISHED] if len(done) > KEEP_FINISHED else []:
            self._jobs.pop(job.id, None)


def jobs_of(request: Request) -> Jobs:
    from labwork.dashboard.web import dashboard_of
    return dashboard_of(request).jobs


router = APIRouter()


def _may_see(request: Request, job: Job) -> bool:
    """A job of a project is for the project's members (and administrators) only."""
    if job.project_id is None:
        return True
    from labwork.auth.identity import identity_of
    from labwork.auth.members import role_of
    from labwork.dashboard.web import dashboard_of
    user = identity_of(request).user
    return user is not None and role_of(dashboard_of(request).store, user, job.project_id) is not None


@router.get("/jobs/{job_id}.json", dependencies=[Depends(json_auth)])
def job_json(job_id: str, request: Request, since: int = 0) -> JSONResponse:
    job = jobs_of(request).get(job_id)
    if job is None or not _may_see(request, job):  # a job of another's project: the same 404
        raise NotFound(f"no job {job_id} (jobs are kept in memory until the control plane restarts)")
    return JSONResponse(job.to_dict(since), headers={"Cache-Control": "no-store"})
