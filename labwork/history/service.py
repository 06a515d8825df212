"""Run history in the control plane: `HistoryService` (ingestion, orphaned spools, the gateway's
statement and session-end hooks, the reaper) and the ingestion and query routes.

Routes (all need the token; see docs/history.md for shapes):

    POST   /api/history/records                 records from kernels (exactly once by record id)
    POST   /api/history/kernel-ended            a kernel died: its open runs end with the reason
    GET    /api/runs                            runs, newest first, paged and filtered
    GET    /api/runs/{run}                      one run with entries, values and artifacts
    DELETE /api/runs/{run}                      remove a run and its stored files
    GET    /api/runs/{run}/values/{name}        a logged value's series
    PUT    /api/runs/{run}/artifacts/{path}     upload a file (raw body) as outputs/...
    GET    /api/runs/{run}/artifacts/{path}     download the newest upload of a path
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from labwork.auth.identity import identity_of, require_token
from labwork.auth.members import runs_filter
from labwork.errors import ConfigError, LabworkError
from labwork.history import artifacts, ingestion, queries, records
from labwork.history.kernel_ends import end_kernel_runs
from labwork.http_params import OffsetQuery
from labwork.settings import Settings
from labwork.store.db import Store

log = logging.getLogger("labwork.history")

SWEEP_EVERY_S = 30.0
_FINAL_STATES = {"available", "cancelled", "error", "dead", "killed"}


class OpenSession(Protocol):
    """A Livy session as history asks about it (`labwork.gateway.sessions.Session`)."""

    @property
    def finished(self) -> bool: ...


class LivySessions(Protocol):
    """What history asks the gateway: is a Livy session still open (`Gateway.sessions` by id)."""

    @property
    def sessions(self) -> Mapping[int, OpenSession]: ...


class HistoryService:
    """Run history in the control plane: ingestion with its dead-letter file, orphaned spools,
    the gateway's statement and session-end hooks, and the reaper of runs gone quiet.

    `livy` (the gateway, set at composition once it exists) spares the runs of sessions still
    open from the reaper."""

    def __init__(self, settings: Settings, store: Store, *, livy: LivySessions | None = None) -> None:
        self.settings = settings
        self.store = store
        self.livy = livy
        self._tasks: list[asyncio.Task] = []

    @property
    def max_upload_mb(self) -> float:
        return float(self.settings.history.max_upload_mb)

    @property
    def dead_letter_file(self) -> Path:
        """Where records that cannot be stored are kept: `LABWORK_HOME/history/dead-letter.jsonl`."""
        return self.settings.home / "history" / "dead-letter.jsonl"

    def ingest_or_keep(self, records: list[Any], source: str, user: str | None = None, *,
                       only_own: bool = False) -> dict[str, Any]:
        """`ingestion.ingest`, with every refused record appended to the dead-letter file with why: the
        one path for the API, spool replays and the gateway's statements; `user` is whose new runs
        they make (the authenticated sender, a Spark session's owner)."""
        result = ingestion.ingest(self.store, records, user, only_own=only_own)
        if result["refused"]:
            self.keep_dead_letters([(records[r["index"]], r) for r in result["refused"]], source)
        return result

    def keep_dead_letters(self, refused: list[tuple[Any, dict[str, Any]]], source: str) -> None:
        """Append `(record, refusal)` pairs to the dead-letter file (0600), one JSON line each."""
        import json
        import time

        from labwork.private import open_private

        path = self.dead_letter_file
        try:
            with open_private(path, "a", encoding="utf-8") as fh:
                for record, why in refused:
                    fh.write(json.dumps({"at": time.time(), "source": source, "error": why["error"],
                                         "record": record}, default=str) + "\n")
        except OSError:
            log.exception("cannot write the dead-letter file %s", path)
        for _, why in refused:
            log.error("run-history record %s (type %s) refused, kept in %s: %s", why["id"], why["type"],
                      path, why["error"])

    # -- spools of kernels that are gone ------------------------------------------------------------

    def _apply_records(self, records: list[dict[str, Any]]) -> None:
        """Refused records go to the dead-letter file, so the spool is never sent again for them."""
        self.ingest_or_keep(records, "spool")

    def _apply_artifact(self, record: dict[str, Any], blob: Path) -> None:
        def chunks():
            with open(blob, "rb") as fh:
                while data := fh.read(1 << 20):
                    yield data
        try:
            artifacts.store_artifact(self.store, self.settings.artifacts_dir, record["run"], record["path"], chunks(),
                                   artifact_id=record["id"], entry_id=record.get("entry"),
                                   max_mb=self.max_upload_mb)
        except LabworkError as exc:
            log.error("spooled upload %s refused: %s", record.get("path"), exc)

    def replay_orphans(self) -> int:
        """Store what kernels that are gone left in LABWORK_HOME/spool; returns the record count."""
        from labwork.history.delivery import orphan_spools, replay_orphan

        total = 0
        for path in orphan_spools(self.settings.spool_dir):
            try:
                total += replay_orphan(path, self._apply_records, self._apply_artifact)
            except Exception:
                log.exception("replaying %s failed; will try again", path)
        if total:
            log.info("replayed %d spooled records", total)
        return total

    # -- the Spark gateway -----------------------------------------------------------------------

    def _history_on(self, conf: dict[str, str]) -> bool:
        """The run configuration's default (`spark.labwork.history`), overridden by an explicit
        `%labwork history on|off` of a live kernel run of the same notebook (a `%%local` cell)."""
        on = conf.get("spark.labwork.history", "").lower() == "true"
        notebook = conf.get("spark.labwork.notebook")
        if not notebook:
            return on
        from sqlalchemy import select

        from labwork.history.tables import RunRow
        with self.store.session() as s:
            row = s.scalars(select(RunRow).where(RunRow.project_dir == conf["spark.labwork.project"],
                                                 RunRow.notebook == notebook, RunRow.source == "kernel",
                                                 RunRow.ended_at.is_(None))
                            .order_by(RunRow.started_at.desc()).limit(1)).first()
            if row is not None and (row.info or {}).get("_switches"):
                return bool(row.history)
        return on

    def record_gateway_statement(self, session: dict[str, Any], statement: dict[str, Any]) -> None:
        """The gateway's `on_statement` hook: a finished statement of a project's Spark session becomes
        an entry of that session's run, when history is on for it. Never raises."""
        try:
            conf = _conf(session)
            project_dir = conf.get("spark.labwork.project")
            if not project_dir:
                return
            if str(statement.get("state")) not in _FINAL_STATES:
                return
            if conf.get("spark.labwork.recorder") == "kernel":
                return  # a labwork sparkmagic kernel records the user's cells itself
            if not self._history_on(conf):
                return
            run_id = gateway_run_id(session)
            output = statement.get("output") or {}
            state = str(statement.get("state"))
            if state in ("cancelled", "cancelling"):
                status = "interrupted"
            elif output.get("status") == "error" or state in ("error", "dead", "killed"):
                status = "error"
            else:
                status = "ok"
            tb = output.get("traceback")
            if isinstance(tb, list):
                tb = "".join(str(x) for x in tb)
            started = _ms(statement.get("started"))
            ended = _ms(statement.get("completed"))
            sid = statement.get("id")
            run_record = {"id": f"{run_id}-run", "type": "run", "run": run_id, "source": "gateway",
                          "project": project_name(conf), "project_dir": project_dir,
                          "notebook": conf.get("spark.labwork.notebook"),
                          "runconfig": conf.get("spark.labwork.runconfig"),
                          "kernel_id": f"livy-session-{session.get('id')}", "history": True,
                          "info": {"livy_session": session.get("id"), "kind": session.get("kind"),
                                   "appId": session.get("appId"), "name": session.get("name"),
                                   "user": session.get("proxyUser") or session.get("owner")}}
            if started is not None:
                run_record["at"] = started
            entry = {"id": f"{run_id}-stmt-{sid}", "type": "entry", "run": run_id, "kind": "statement",
                     "seq": int(sid) + 1 if isinstance(sid, int) or str(sid).isdigit() else 0,
                     "execution_count": output.get("execution_count"), "code": str(statement.get("code") or ""),
                     "started": started, "ended": ended, "status": status,
                     "error_name": output.get("ename") if status == "error" else None,
                     "error_value": output.get("evalue") if status == "error" else None,
                     "traceback": tb if status == "error" else None}
            if ended is not None:
                entry["at"] = ended
            with self.store.session() as s:
                from labwork.history.tables import RunRow
                known = s.get(RunRow, run_id) is not None
            self.ingest_or_keep(([] if known else [run_record]) + [entry], "gateway",
                                user=session.get("proxyUser") or session.get("owner"))
        except Exception:
            log.exception("recording gateway statement %s failed", statement.get("id"))

    def end_gateway_session(self, session: dict[str, Any]) -> None:
        """The gateway's `on_session_end` hook: a session that finished (deleted, its driver dead,
        failed to start) ends its run, with the reason. Never raises."""
        try:
            run_id = gateway_run_id(session)
            from labwork.history.tables import RunRow
            with self.store.session() as s:
                if s.get(RunRow, run_id) is None:
                    return
            state = str(session.get("state") or "")
            end: dict[str, Any] = {"id": f"{run_id}-end", "type": "end", "run": run_id, "by": "session"}
            if state in ("dead", "error"):
                end["status"] = "failed"
                end["reason"] = f"the Spark session {session.get('id')} ended ({state})" + (
                    f": {session['error']}" if session.get("error") else "")
            else:
                end["reason"] = f"the Spark session {session.get('id')} was deleted"
            self.ingest_or_keep([end], "gateway")
        except Exception:
            log.exception("ending the gateway run of session %s failed", session.get("id"))

    def reap_stale_runs(self) -> list[str]:
        """Close runs whose kernel stopped reporting (`history.stale_after_s`); a gateway run whose
        session is still open on this control plane's gateway (`livy`) is spared."""
        livy = self.livy

        def alive(run: dict[str, Any]) -> bool:
            sid = (run.get("info") or {}).get("livy_session")
            if run.get("source") != "gateway" or livy is None or not isinstance(sid, int):
                return False
            session = livy.sessions.get(sid)
            return session is not None and not session.finished

        closed = ingestion.reap_stale_runs(self.store, self.settings.history.stale_after_s, alive)
        for run_id in closed:
            log.info("run %s closed: %s", run_id, ingestion.STALE_REASON)
        return closed

    # -- start-up and shut-down ------------------------------------------------------------------

    async def start(self) -> None:
        """Start-up hook: sweep orphaned spools now and every half minute, and close runs whose
        kernel stopped reporting every `history.reap_every_s`."""
        self._tasks = [asyncio.create_task(self._sweep_forever()), asyncio.create_task(self._reap_forever())]

    async def stop(self) -> None:
        """Shut-down hook: the background loops end."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.replay_orphans)
            except Exception:
                log.exception("spool sweep failed")
            await asyncio.sleep(SWEEP_EVERY_S)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.history.reap_every_s)
            try:
                await asyncio.to_thread(self.reap_stale_runs)
            except Exception:
                log.exception("closing stale runs failed")


# --- what a gateway session says about its run ---------------------------------------------------

def _conf(session: dict[str, Any]) -> dict[str, str]:
    conf = session.get("conf") or {}
    return {str(k): str(v) for k, v in conf.items()} if isinstance(conf, dict) else {}


def gateway_run_id(session: dict[str, Any]) -> str:
    """The run of a gateway session: `spark.labwork.run` when given, else derived from the
    session's identity (its `uid` if the gateway gives one, else id, name and appId)."""
    conf = _conf(session)
    explicit = conf.get("spark.labwork.run")
    if explicit and records.RUN_ID.match(explicit):
        return explicit
    key = "|".join(str(session.get(k) or "") for k in ("uid", "id", "name", "appId", "created"))
    key += "|" + conf.get("spark.labwork.project", "") + "|" + conf.get("spark.labwork.notebook", "")
    return "gw" + hashlib.sha256(key.encode()).hexdigest()[:30]


def project_name(conf: dict[str, str]) -> str:
    """The project's name (`[project] name` of its labwork.toml, e.g. `myIris`), as kernel runs
    record it: the session's `spark.labwork.project_name`, else read from the project folder."""
    from labwork.history.context import _project_name
    given = conf.get("spark.labwork.project_name")
    if given:
        return given
    return _project_name(Path(conf["spark.labwork.project"])) or Path(conf["spark.labwork.project"]).name


def _ms(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v / 1000.0 if v > 0 else None


# --- the routes --------------------------------------------------------------------------------------

router = APIRouter(tags=["run history"], dependencies=[Depends(require_token)])


class _HasHistory(Protocol):
    history: HistoryService


def history(request: Request) -> HistoryService:
    """The routes' one way to the service (the control plane's `Services.history`)."""
    services: _HasHistory = request.app.state.services
    return services.history


class RecordsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Any]]


@router.post("/api/history/records")
def post_records(body: RecordsBody, request: Request) -> dict[str, Any]:
    """Store records sent by a kernel, in order; ids already stored are counted as duplicates.

    A record that cannot be stored is refused alone (listed in `refused` with why, and kept in
    the dead-letter file); when every record of the batch is refused the answer is 400."""
    caller = identity_of(request).user  # whose kernel sends them: the runs it makes are theirs
    result = history(request).ingest_or_keep(body.records, "api", user=caller.name if caller else None,
                                             only_own=not (caller and caller.admin))
    if body.records and len(result["refused"]) == len(body.records):
        raise ConfigError(f"every record of the batch was refused: {result['refused'][0]['error']}",
                          where=f"record {result['refused'][0]['id']}",
                          hint="the refused records are kept in LABWORK_HOME/history/dead-letter.jsonl",
                          details={"refused": result["refused"]})
    return result


class KernelEndedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kernel_id: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=500)
    pid: int | None = None
    at: str | None = None


@router.post("/api/history/kernel-ended")
def kernel_ended(body: KernelEndedBody, request: Request) -> dict[str, Any]:
    """A kernel's provisioner saw it die: its open runs end, failed, with the reason."""
    closed = end_kernel_runs(history(request).store, body.kernel_id, body.reason, pid=body.pid, at=body.at)
    for run_id in closed:
        log.info("run %s closed: %s", run_id, body.reason)
    return {"closed": closed}


@router.get("/api/runs")
def runs(request: Request, project: str | None = None, notebook: str | None = None,
         status: str | None = None, since: str | None = None, until: str | None = None,
         user: str | None = Query(None, max_length=64, description="only the runs of this user"),
         limit: int = Query(50, ge=1, le=1000), offset: OffsetQuery = 0) -> dict[str, Any]:
    store = history(request).store
    scope = runs_filter(store, identity_of(request).user, project)  # only the caller's projects' runs
    return queries.list_runs(store, project=scope, notebook=notebook, status=status,
                             since=since, until=until, user=user, limit=limit, offset=offset)


@router.get("/api/runs/{run_id}")
def run(run_id: str, request: Request) -> dict[str, Any]:
    return queries.get_run(history(request).store, run_id)


@router.delete("/api/runs/{run_id}")
def delete_run(run_id: str, request: Request) -> dict[str, Any]:
    service = history(request)
    return queries.delete_run(service.store, service.settings.artifacts_dir, run_id)


@router.get("/api/runs/{run_id}/values/{name:path}")
def value_series(run_id: str, name: str, request: Request) -> dict[str, Any]:
    return queries.value_series(history(request).store, run_id, name)


@router.get("/api/runs/{run_id}/artifacts/{path:path}")
def download(run_id: str, path: str, request: Request) -> FileResponse:
    service = history(request)
    file, info = artifacts.artifact_file(service.store, service.settings.artifacts_dir, run_id, path)
    return FileResponse(file, filename=Path(info["path"]).name, media_type="application/octet-stream",
                        headers={"X-Labwork-Sha256": info["sha256"]})


@router.put("/api/runs/{run_id}/artifacts/{path:path}")
async def upload(run_id: str, path: str, request: Request, id: str | None = None,
                 entry: str | None = None) -> dict[str, Any]:
    """The raw request body is the file; `path` must be `outputs/...`; `id` makes retries safe."""
    service = history(request)
    limit_mb = service.max_upload_mb
    limit = artifacts.mb_to_bytes(limit_mb)
    norm = artifacts.check_upload_path(path)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise artifacts.too_large(norm, int(declared), limit_mb)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise artifacts.too_large(norm, None, limit_mb)
        chunks.append(chunk)
    return await asyncio.to_thread(artifacts.store_artifact, service.store, service.settings.artifacts_dir, run_id,
                                   norm, chunks, artifact_id=id, entry_id=entry, max_mb=limit_mb)
