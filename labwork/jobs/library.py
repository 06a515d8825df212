"""The jobs library: every operation the CLI, the API and the dashboard offer, one method each.

`Jobs` is made once per control plane by `labwork.jobs.service.attach` with its collaborators
(settings, store, the control plane's URL). Every method returns plain JSON-able dicts (shapes in
docs/jobs.md); bad input raises a `LabworkError` saying what and where, and creates nothing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from labwork.errors import ConfigError, Conflict, NotFound
from labwork.jobs import params as jp
from labwork.jobs import schedule as sched
from labwork.jobs import webhooks
from labwork.jobs.execution import Executor, aware, now
from labwork.jobs.tables import JobRow, JobRunRow
from labwork.project.files import load_project, valid_name
from labwork.project.registry import get_project_row
from labwork.settings import Settings
from labwork.store.db import Store

log = logging.getLogger("labwork.jobs")

ACTIVE = ("queued", "starting", "running")
ENDED = ("completed", "failed", "cancelled", "skipped", "missed")
MISSED_POLICIES = ("run_once", "skip")
RESERVED = {"runs"}  # /api/projects/{id}/jobs/runs/{run} names runs
LOG_CHUNK = 1 << 20
EDITABLE = {"notebook", "runconfig", "config", "parameters", "schedule", "timezone", "enabled", "missed",
            "timeout", "retries", "retry_delay", "max_concurrent", "webhook_url", "notify_success"}


def _iso(dt: datetime | None) -> str | None:
    dt = aware(dt)
    return dt.isoformat() if dt else None


class Jobs:
    """Jobs of registered projects: definitions, triggers, runs and their files."""

    def __init__(self, settings: Settings, store: Store, *, control_url: Callable[[], str],
                 environment: Callable[..., dict[str, str]],
                 run_token: Callable[[str], str | None] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.control_url = control_url
        self.environment = environment  # labwork.notebooks.launch.server_environment's signature
        # a personal token for a run's kernels (LABWORK_TOKEN: what its Spark kernels send to /livy)
        self.run_token = run_token
        self.executor = Executor(settings, store, self._finished)
        self._trigger_lock = threading.Lock()
        self.scheduler: Any = None  # the Scheduler, set by labwork.jobs.service.attach

    # ================================================================ definitions
    def _project(self, ref: int | str | Path) -> dict[str, Any]:
        return get_project_row(self.store, ref)

    def _job_row(self, s: Any, project: dict[str, Any], name: str) -> JobRow:
        bad = "\x00" in name or len(name) > 200  # no job can have such a name (PostgreSQL refuses NUL)
        row = None if bad else s.scalar(select(JobRow).where(JobRow.project_id == project["id"], JobRow.name == name))
        if row is None:
            raise NotFound(f"no job '{name}' in project '{project['name']}'", where=name,
                           hint="'labwork job list' shows the project's jobs",
                           hints={"dashboard": "the project's Jobs page lists them"})
        return row

    def _resolve(self, project: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        """Check every field of a job definition against the project; the columns' values."""
        from labwork.notebooks.config import parse_config
        from labwork.notebooks.preview import notebook_in_project
        from labwork.notebooks.recent import recent_notebooks
        loaded = load_project(project["path"])
        root = loaded.root
        path = notebook_in_project(root, fields["notebook"])
        if path.suffix != ".ipynb":
            raise ConfigError("a job runs a notebook (.ipynb)", where=str(fields["notebook"]))
        rel = path.relative_to(root.resolve()).as_posix()
        if len(rel) > 1000:
            raise ConfigError("the notebook's path is longer than 1000 characters", where=rel[:200])
        runconfig, config = fields.get("runconfig"), fields.get("config")
        if not runconfig or config is None:
            last = next((r for r in recent_notebooks(self.store, project) if r["notebook"] == rel), None)
            if not runconfig:
                runconfig = (last or {}).get("runconfig") or loaded.default_runconfig
            if config is None:
                config = (last or {}).get("server_config") or {}
        rc = loaded.runconfig(runconfig)  # NotFound naming the known ones
        cfg = parse_config(config).model_dump(mode="json")
        cfg.pop("hours", None)
        parameters = jp.clean(fields.get("parameters"), "parameters")
        jp.require_parameters_cell(path, parameters, rel)
        missed = fields.get("missed") or "run_once"
        if missed not in MISSED_POLICIES:
            raise ConfigError(f"missed-run policy {missed!r} is not one of {', '.join(MISSED_POLICIES)}",
                              where="missed")
        tz = fields.get("timezone") or "UTC"
        sched.zone(tz)
        schedule = fields.get("schedule") or None
        if schedule is not None:
            schedule = sched.check(schedule, tz)
        retries = int(fields.get("retries") or 0)
        max_concurrent = int(fields.get("max_concurrent") or 1)
        if not 0 <= retries <= 100:
            raise ConfigError(f"retries must be 0 to 100, got {retries}", where="retries")
        if not 1 <= max_concurrent <= 100:
            raise ConfigError(f"max_concurrent must be 1 to 100, got {max_concurrent}", where="max_concurrent")
        delay = fields.get("retry_delay")
        return {"notebook": rel, "runconfig": runconfig, "config": cfg, "parameters": parameters,
                "schedule": schedule, "timezone": tz, "missed": missed,
                "timeout_s": jp.duration_s(fields.get("timeout"), "timeout"), "retries": retries,
                "retry_delay_s": self.settings.jobs.retry_delay_s if delay in (None, "") else
                jp.duration_s(delay, "retry_delay", zero=True),
                "max_concurrent": max_concurrent,
                "webhook_url": webhooks.check_url(fields.get("webhook_url"), "webhook_url"),
                "notify_success": bool(fields.get("notify_success")),
                "enabled": True if fields.get("enabled") is None else bool(fields.get("enabled"))}

    def create(self, project_ref: int | str | Path, name: str, notebook: str, **fields: Any) -> dict[str, Any]:
        """A new job; `fields` are EDITABLE's (runconfig/config default to the notebook's last run's)."""
        unknown = set(fields) - EDITABLE
        if unknown:
            raise ConfigError(f"unknown job field(s): {', '.join(sorted(unknown))}", where="job")
        project = self._project(project_ref)
        valid_name(name, "job name")
        if name.lower() in RESERVED:
            raise ConfigError(f"'{name}' is reserved; choose another job name", where="job name")
        values = self._resolve(project, {**fields, "notebook": notebook})
        stamp = now()
        with self.store.session() as s:
            if s.scalar(select(JobRow.id).where(JobRow.project_id == project["id"], JobRow.name == name)):
                raise Conflict(f"project '{project['name']}' already has a job '{name}'", where=name,
                               hint="choose another name, or change it with 'labwork job update'")
            row = JobRow(project_id=project["id"], name=name, created_at=stamp, updated_at=stamp, **values)
            row.next_fire_at = self._next_fire(row, stamp)
            s.add(row)
        return self.show(project["id"], name)

    def update(self, project_ref: int | str | Path, name: str, **fields: Any) -> dict[str, Any]:
        """Change some fields of a job (the others stay); the schedule's next fire time is recomputed."""
        unknown = set(fields) - EDITABLE
        if unknown:
            raise ConfigError(f"unknown job field(s): {', '.join(sorted(unknown))}", where="job")
        project = self._project(project_ref)
        if set(fields) == {"enabled"}:  # the schedule's switch: works even if the notebook has gone
            with self.store.session() as s:
                row = self._job_row(s, project, name)
                row.enabled, row.updated_at = bool(fields["enabled"]), now()
                row.next_fire_at = self._next_fire(row, now())
            return self.show(project["id"], name)
        with self.store.session() as s:
            row = self._job_row(s, project, name)
            current = {"notebook": row.notebook, "runconfig": row.runconfig, "config": row.config,
                       "parameters": row.parameters, "schedule": row.schedule, "timezone": row.timezone,
                       "missed": row.missed, "timeout": row.timeout_s, "retries": row.retries,
                       "retry_delay": row.retry_delay_s, "max_concurrent": row.max_concurrent,
                       "webhook_url": row.webhook_url, "notify_success": row.notify_success,
                       "enabled": row.enabled}
        values = self._resolve(project, current | fields)
        with self.store.session() as s:
            row = self._job_row(s, project, name)
            reschedule = (values["schedule"], values["timezone"], values["enabled"]) != \
                (row.schedule, row.timezone, row.enabled)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = now()
            if reschedule:
                row.next_fire_at = self._next_fire(row, now())
        return self.show(project["id"], name)

    @staticmethod
    def _next_fire(row: JobRow, after: datetime) -> datetime | None:
        if not row.schedule or not row.enabled:
            return None
        return sched.next_after(row.schedule, row.timezone, after)

    def job_dict(self, row: JobRow, project: dict[str, Any], last: JobRunRow | None = None) -> dict[str, Any]:
        return {"id": row.id, "name": row.name, "project": {"id": project["id"], "name": project["name"]},
                "notebook": row.notebook, "runconfig": row.runconfig,
                "kernel": f"{project['name']} {row.runconfig}", "config": row.config,
                "parameters": row.parameters, "schedule": row.schedule, "timezone": row.timezone,
                "enabled": row.enabled, "missed": row.missed, "timeout_s": row.timeout_s,
                "retries": row.retries, "retry_delay_s": row.retry_delay_s,
                "max_concurrent": row.max_concurrent, "webhook_url": row.webhook_url,
                "notify_success": row.notify_success,
                "next_run": _iso(row.next_fire_at) if row.schedule and row.enabled else None,
                "last_run": self.run_dict(last) if last is not None else None,
                "created": _iso(row.created_at), "updated": _iso(row.updated_at)}

    def list(self, project_ref: int | str | Path) -> list[dict[str, Any]]:
        project = self._project(project_ref)
        with self.store.session() as s:
            rows = s.scalars(select(JobRow).where(JobRow.project_id == project["id"]).order_by(JobRow.name)).all()
            out = []
            for row in rows:
                last = s.scalar(select(JobRunRow).where(JobRunRow.job_id == row.id,
                                                        JobRunRow.status.not_in(("skipped", "missed")))
                                .order_by(JobRunRow.id.desc()).limit(1))
                out.append(self.job_dict(row, project, last))
            return out

    def show(self, project_ref: int | str | Path, name: str) -> dict[str, Any]:
        project = self._project(project_ref)
        with self.store.session() as s:
            row = self._job_row(s, project, name)
            runs = s.scalars(select(JobRunRow).where(JobRunRow.job_id == row.id)
                             .order_by(JobRunRow.id.desc()).limit(20)).all()
            last = next((r for r in runs if r.status not in ("skipped", "missed")), None)
            out = self.job_dict(row, project, last)
            out["runs"] = [self.run_dict(r) for r in runs]
            return out

    def delete(self, project_ref: int | str | Path, name: str) -> dict[str, Any]:
        """Delete a job with its runs and their files; running runs are cancelled first."""
        project = self._project(project_ref)
        with self.store.session() as s:
            row = self._job_row(s, project, name)
            job_id = row.id
            running = s.scalars(select(JobRunRow.id).where(JobRunRow.job_id == job_id,
                                                           JobRunRow.status == "running")).all()
        for run_id in running:
            self.executor.cancel(run_id, "the job was deleted")
        with self.store.session() as s:
            row = s.get(JobRow, job_id)
            s.delete(row)
        shutil.rmtree(self.settings.home / "jobs" / str(project["id"]) / str(job_id), ignore_errors=True)
        return {"deleted": name, "project": project["name"], "cancelled_runs": list(running)}

    # ================================================================ runs
    def run_dict(self, row: JobRunRow) -> dict[str, Any]:
        started, ended = aware(row.started_at), aware(row.ended_at)
        return {"id": row.id, "job_id": row.job_id, "trigger": row.trigger, "status": row.status,
                "reason": row.reason, "parameters": row.parameters, "runconfig": row.runconfig,
                "config": row.config, "config_hash": row.config_hash, "notebook_hash": row.notebook_hash,
                "attempt": row.attempt, "retry_of": row.retry_of, "kernel_id": row.kernel_id,
                "history_run": row.history_run, "exit_code": row.exit_code,
                "scheduled_for": _iso(row.scheduled_for), "created": _iso(row.created_at),
                "started": _iso(started), "ended": _iso(ended),
                "duration_s": (ended - started).total_seconds() if started and ended else None,
                "output_kept": bool(row.output_path) and Path(row.output_path).is_file(),
                "not_before": _iso(row.not_before)}

    def _hashes(self, project: dict[str, Any], job: JobRow, rc_dump: dict[str, Any]) -> tuple[str, str | None]:
        conf = json.dumps({"runconfig": job.runconfig, "runconfig_file": rc_dump, "config": job.config},
                          sort_keys=True, default=str)
        try:
            nb = hashlib.sha256((Path(project["path"]) / job.notebook).read_bytes()).hexdigest()
        except OSError:
            nb = None
        return hashlib.sha256(conf.encode()).hexdigest(), nb

    def run(self, project_ref: int | str | Path, name: str, parameters: dict[str, Any] | None = None,
            *, trigger: str = "manual", scheduled_for: datetime | None = None) -> dict[str, Any]:
        """Trigger a job: its run (started at once), or a `skipped` run when `max_concurrent` are
        already active. `parameters` override the job's for this run."""
        project = self._project(project_ref)
        with self.store.session() as s:
            job_id = self._job_row(s, project, name).id
        return self.trigger(job_id, parameters, trigger=trigger, scheduled_for=scheduled_for)

    def trigger(self, job_id: int, parameters: dict[str, Any] | None = None, *, trigger: str = "manual",
                scheduled_for: datetime | None = None, attempt: int = 1, retry_of: int | None = None,
                not_before: datetime | None = None) -> dict[str, Any]:
        """Record a run of job `job_id` (the scheduler's and retries' way in) and start it when due."""
        with self.store.session() as s:
            job = s.get(JobRow, job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            project = get_project_row(self.store, job.project_id)
            override = jp.clean(parameters, "parameters")
            merged = dict(job.parameters) | override
            loaded = load_project(project["path"])
            if override:
                from labwork.notebooks.preview import notebook_in_project
                jp.require_parameters_cell(notebook_in_project(loaded.root, job.notebook), override, job.notebook)
            rc_dump = loaded.runconfig(job.runconfig).model_dump(mode="json")
            conf_hash, nb_hash = self._hashes(project, job, rc_dump)
        with self._trigger_lock, self.store.session() as s:
            job = s.get(JobRow, job_id)
            active = s.scalar(select(func.count()).select_from(JobRunRow)
                              .where(JobRunRow.job_id == job_id, JobRunRow.status.in_(ACTIVE))) or 0
            status, reason = "queued", None
            if trigger != "retry" and active >= job.max_concurrent:
                status = "skipped"
                reason = (f"{active} run(s) of this job already active (at most {job.max_concurrent} at once)")
            row = JobRunRow(job_id=job_id, trigger=trigger, scheduled_for=scheduled_for, status=status,
                            reason=reason, parameters=merged, runconfig=job.runconfig, config=job.config,
                            config_hash=conf_hash, notebook_hash=nb_hash, attempt=attempt, retry_of=retry_of,
                            created_at=now(), not_before=not_before,
                            ended_at=now() if status == "skipped" else None)
            s.add(row)
            s.flush()
            run_id = row.id
        if status == "queued" and (not_before is None or not_before <= now()):
            self.start(run_id)
        return self.run_show(project["id"], run_id)

    def start(self, run_id: int) -> None:
        """Start a queued run now (the runner's environment is a Jupyter server's for the project)."""
        from labwork.kernels.specs import kernel_name
        from labwork.notebooks.config import parse_config
        from labwork.notebooks.preview import notebook_in_project
        with self.store.session() as s:  # claim it: only one caller may start a queued run
            claimed = s.execute(update(JobRunRow).where(JobRunRow.id == run_id, JobRunRow.status == "queued")
                                .values(status="starting")).rowcount
        if not claimed:
            return
        with self.store.session() as s:
            run = s.get(JobRunRow, run_id)
            job = s.get(JobRow, run.job_id)
            project = get_project_row(self.store, job.project_id)
            job_id, nb, timeout = job.id, job.notebook, job.timeout_s
            rc, config, parameters = run.runconfig, run.config, dict(run.parameters)
        try:
            loaded = load_project(project["path"])
            path = notebook_in_project(loaded.root, nb)
            env = self.environment(home=self.settings.home, url=self.control_url(), root=loaded.root,
                                   name=loaded.name, server_id=None, config=parse_config(config), token=None)
            personal = self.run_token(f"job run {run_id}") if self.run_token is not None else None
            if personal:
                env["LABWORK_TOKEN"] = personal
        except Exception as exc:  # noqa: BLE001 - a project or notebook gone since: the run says why
            with self.store.session() as s:
                row = s.get(JobRunRow, run_id)
                row.status, row.ended_at = "failed", now()
                row.reason = getattr(exc, "message", None) or str(exc)
            self._finished(run_id)
            return
        try:
            self.executor.start(run_id, project_id=project["id"], job_id=job_id, notebook=path, root=loaded.root,
                                kernel_name=kernel_name(rc), parameters=parameters, env=env, timeout_s=timeout)
        except Exception as exc:  # noqa: BLE001 - e.g. LABWORK_HOME not writable: the run says so
            log.exception("starting job run %s", run_id)
            with self.store.session() as s:
                row = s.get(JobRunRow, run_id)
                if row.status == "starting":
                    row.status, row.ended_at, row.reason = "failed", now(), f"could not start the run: {exc}"
            self._finished(run_id)

    def _run_row(self, s: Any, project: dict[str, Any], run_id: int) -> tuple[JobRunRow, JobRow]:
        row = s.get(JobRunRow, int(run_id))
        job = s.get(JobRow, row.job_id) if row is not None else None
        if row is None or job is None or job.project_id != project["id"]:
            raise NotFound(f"no job run {run_id} in project '{project['name']}'", where=str(run_id),
                           hint="'labwork job runs NAME' lists a job's runs")
        return row, job

    def run_show(self, project_ref: int | str | Path, run_id: int) -> dict[str, Any]:
        project = self._project(project_ref)
        with self.store.session() as s:
            row, job = self._run_row(s, project, run_id)
            if row.history_run is None and row.kernel_id and row.status in ENDED:
                row.history_run = self._history_run(s, row.kernel_id)
            out = self.run_dict(row)
            out["job"] = {"id": job.id, "name": job.name, "notebook": job.notebook}
            out["project"] = {"id": project["id"], "name": project["name"]}
            return out

    @staticmethod
    def _history_run(s: Any, kernel_id: str) -> str | None:
        from labwork.history.tables import RunRow
        return s.scalar(select(RunRow.id).where(RunRow.kernel_id == kernel_id).limit(1))

    def runs(self, project_ref: int | str | Path, name: str, limit: int = 100) -> list[dict[str, Any]]:
        project = self._project(project_ref)
        with self.store.session() as s:
            job = self._job_row(s, project, name)
            rows = s.scalars(select(JobRunRow).where(JobRunRow.job_id == job.id)
                             .order_by(JobRunRow.id.desc()).limit(max(1, min(int(limit), 1000)))).all()
            return [self.run_dict(r) for r in rows]

    def cancel(self, project_ref: int | str | Path, run_id: int) -> dict[str, Any]:
        """Cancel a queued or running run (its output notebook so far is kept)."""
        project = self._project(project_ref)
        with self.store.session() as s:
            row, _ = self._run_row(s, project, run_id)
            if row.status not in ACTIVE:
                raise Conflict(f"job run {run_id} is {row.status}, not running", where=str(run_id))
            if row.status == "queued" and not self.executor.cancel(row.id):
                row.status, row.reason, row.ended_at = "cancelled", "cancelled by the user", now()
                return self.run_dict(row)
        self.executor.cancel(int(run_id))
        return self.run_show(project["id"], run_id)

    def log_file(self, project_ref: int | str | Path, run_id: int) -> Path:
        project = self._project(project_ref)
        with self.store.session() as s:
            row, _ = self._run_row(s, project, run_id)
            path, status = row.log_path, row.status
        if not path or not Path(path).is_file():
            raise NotFound(f"job run {run_id} has no log ({status})", where=str(run_id))
        return Path(path)

    def logs(self, project_ref: int | str | Path, run_id: int, offset: int = 0) -> dict[str, Any]:
        """Log text from byte `offset`; call again with the returned `offset` to follow."""
        project = self._project(project_ref)
        path = self.log_file(project["id"], run_id)
        with self.store.session() as s:
            status = s.get(JobRunRow, int(run_id)).status
        size = path.stat().st_size
        offset = max(0, int(offset)) if int(offset) <= size else 0
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(LOG_CHUNK)
        if len(data) == LOG_CHUNK and b"\n" in data:
            data = data[:data.rindex(b"\n") + 1]
        nxt = offset + len(data)
        return {"run_id": int(run_id), "status": status, "active": status in ACTIVE,
                "text": data.decode("utf-8", errors="replace"), "offset": nxt, "eof": nxt >= size}

    def output_path(self, project_ref: int | str | Path, run_id: int) -> Path:
        """The run's output notebook (kept on success and on failure)."""
        project = self._project(project_ref)
        with self.store.session() as s:
            row, _ = self._run_row(s, project, run_id)
            path, status = row.output_path, row.status
        if not path or not Path(path).is_file():
            raise NotFound(f"job run {run_id} has no output notebook ({status})", where=str(run_id),
                           hint="a run writes it from its first cell on; a skipped or missed run has none")
        return Path(path)

    # ================================================================ after a run
    def _finished(self, run_id: int) -> None:
        """A run ended: link its run history, notify, and queue a retry when it failed."""
        try:
            with self.store.session() as s:
                run = s.get(JobRunRow, run_id)
                job = s.get(JobRow, run.job_id) if run is not None else None
                if run is None or job is None:
                    return
                if run.kernel_id and run.history_run is None:
                    run.history_run = self._history_run(s, run.kernel_id)
                retry = run.status == "failed" and run.attempt <= job.retries
                delay = min(self.settings.jobs.max_retry_delay_s, job.retry_delay_s * 2 ** (run.attempt - 1))
                info = self.run_dict(run)
                job_brief = {"id": job.id, "name": job.name, "project_id": job.project_id}
                hook, success = job.webhook_url, job.notify_success
                first = run.retry_of or run.id
                attempt, params, job_id = run.attempt, dict(run.parameters), job.id
            self._prune(job_id)
            if retry:
                self.trigger(job_id, params, trigger="retry", attempt=attempt + 1, retry_of=first,
                             not_before=now() + timedelta(seconds=delay))
            if hook and (info["status"] == "failed" or (success and info["status"] == "completed")):
                self._notify(hook, job_brief, info, retrying=retry)
        except Exception:  # noqa: BLE001 - bookkeeping after a run never breaks the watcher
            log.exception("after job run %s", run_id)

    def _prune(self, job_id: int) -> None:
        """Keep the newest `jobs.runs_kept_per_job` ended runs of a job (with their files)."""
        keep = self.settings.jobs.runs_kept_per_job
        with self.store.session() as s:
            old = s.scalars(select(JobRunRow).where(JobRunRow.job_id == job_id, JobRunRow.status.in_(ENDED))
                            .order_by(JobRunRow.id.desc()).offset(keep)).all()
            dirs = [Path(r.log_path).parent for r in old if r.log_path]
            for row in old:
                s.delete(row)
        for folder in dirs:
            shutil.rmtree(folder, ignore_errors=True)

    def _notify(self, url: str, job: dict[str, Any], run: dict[str, Any], *, retrying: bool) -> None:
        base = self.control_url() or ""
        body = {"job": job["name"], "job_id": job["id"], "project_id": job["project_id"], "run": run["id"],
                "status": run["status"], "reason": run["reason"], "attempt": run["attempt"],
                "retrying": retrying, "started": run["started"], "ended": run["ended"],
                "duration_s": run["duration_s"], "parameters": run["parameters"],
                "link": f"{base}/projects/{job['project_id']}/jobs/runs/{run['id']}"}
        webhooks.send(url, body, attempts=self.settings.jobs.webhook_attempts,
                      timeout=self.settings.jobs.webhook_timeout_s,
                      on_done=lambda outcome: self._note_webhook(run["id"], outcome))

    def _note_webhook(self, run_id: int, outcome: str) -> None:
        from labwork.jobs.execution import note
        with self.store.session() as s:
            row = s.get(JobRunRow, run_id)
            path = row.log_path if row is not None else None
        if path:
            note(path, f"webhook {outcome}")
