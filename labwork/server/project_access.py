"""The one place that decides whether the caller may reach a project: a dependency of the whole
control-plane app (`FastAPI(dependencies=...)`), so every route whose path names a project (`ref`
in `/api/projects/{ref}/...`, `project_id` in the pages' `/projects/{project_id}/...`, and a run's
`run_id`, which belongs to the project of its folder) is checked before its handler runs,
whichever part defined it.

* A caller who is not a member (and no administrator) gets the very answer an unknown project
  gets: 404 "no project ...", in the API and the pages alike (the `/livy` mount applies the same
  rule to the project a Spark session is tagged with: `labwork.server.livy_access`).
* A member may use the project; what changes its set-up (compute targets and run configurations,
  members) needs an owner: 403 for a member (`OWNER_ONLY`).
"""
from __future__ import annotations

import asyncio

from fastapi import Request
from sqlalchemy import select

from labwork.access import SAFE_METHODS
from labwork.auth.identity import identity_of
from labwork.auth.members import OWNER, role_of, visible_folders
from labwork.errors import Forbidden, NotFound
from labwork.history.tables import RunRow
from labwork.auth.users import UserRef
from labwork.project.registry import PROJECTS_HINTS, get_project_row
from labwork.server.deps import store

PROJECT_PARAMS = ("ref", "project_id")
# Path segments after the project whose state-changing requests are an owner's.
OWNER_ONLY = frozenset({"compute", "members", "runconfigs"})
STATE_KEY = "labwork_project"


def _segment_after(path: str) -> str | None:
    """`compute` of `/projects/7/compute/attach` and `/api/projects/x/compute`."""
    segments = [p for p in path.split("/") if p]
    try:
        i = segments.index("projects") + 2
    except ValueError:
        return None
    return segments[i] if i < len(segments) else None


async def project_access(request: Request) -> None:
    """Check the caller's role in the project the path names (a no-op elsewhere, without a thread
    hop); the project is kept on `request.state.labwork_project` (with `role`)."""
    params = request.path_params
    ref = next((params[k] for k in PROJECT_PARAMS if k in params), None)
    run_id = params.get("run_id")
    if ref is None and run_id is None:
        return
    user = identity_of(request).user
    if user is None or (ref is None and user.admin):
        return  # AccessGuard answered the anonymous already; require_token re-checks
    if ref is None:
        await asyncio.to_thread(_check_run, request, user, str(run_id))
    else:
        await asyncio.to_thread(_check, request, user, ref)


def _check_run(request: Request, user: UserRef, run_id: str) -> None:
    """A run is its project's: visible to the project's members (an unknown run, or one of no
    project the caller may see, is the same 404)."""
    db = store(request)
    with db.session() as s:
        folder = s.scalar(select(RunRow.project_dir).where(RunRow.id == run_id[:64]))
    if folder is None or folder not in (visible_folders(db, user) or []):
        raise NotFound(f"no run '{run_id[:80]}'", where="run",
                       hint="'labwork run list' lists the runs of your projects",
                       hints={"dashboard": "Run history lists the runs of your projects"})


def _check(request: Request, user: UserRef, ref: str | int) -> None:
    db = store(request)
    try:
        row = get_project_row(db, ref)
    except NotFound:
        if user.admin:  # an admin sees every project: the route answers an unknown one in its own shape
            return
        raise  # to everyone else an unknown project and one they are not in are the same 404
    role = role_of(db, user, row["id"])
    if role is None:
        raise NotFound(f"no project '{ref}'", hint="register it with 'labwork init DIR' or by folder in "
                       "the dashboard", hints=PROJECTS_HINTS)
    if request.method not in SAFE_METHODS and role != OWNER \
            and _segment_after(request.url.path) in OWNER_ONLY:
        raise Forbidden(f"only an owner of project '{row['name']}' may change its compute targets, "
                        "run configurations and members", where="project",
                        hint="ask an owner: 'labwork project members list PROJECT' names them",
                        hints={"dashboard": "ask an owner: the project's Members page names them"})
    setattr(request.state, STATE_KEY, row | {"role": role})
