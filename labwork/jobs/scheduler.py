"""The control plane's cron loop: fires scheduled jobs and starts queued retries when due.

Each job keeps its next fire time in the store (`jobs.next_fire_at`). A tick first records the
run of a due fire time (unique per job and fire time, so it can never run twice), then moves
`next_fire_at` on; a restart between the two finds the run already recorded. Fire times found
later than `jobs.misfire_grace_s` (the control plane was down) follow the job's policy: `run_once`
runs the newest of them once and records the older ones as `missed`; `skip` records them all as
`missed`.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from labwork.jobs import schedule as sched
from labwork.jobs.execution import aware, now
from labwork.jobs.library import Jobs
from labwork.jobs.tables import JobRow, JobRunRow

log = logging.getLogger("labwork.jobs")


class Scheduler:
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs
        self.store = jobs.store
        self.settings = jobs.settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ one pass
    def tick(self) -> datetime | None:
        """Fire what is due, start queued runs that are due; the earliest next fire time."""
        at = now()
        with self.store.session() as s:
            due = s.scalars(select(JobRow.id).where(JobRow.enabled.is_(True), JobRow.schedule.is_not(None),
                                                    JobRow.next_fire_at <= at)).all()
        for job_id in due:
            try:
                self._fire(job_id)
            except Exception:  # noqa: BLE001 - one job's problem never stops the others
                log.exception("firing job %s", job_id)
        with self.store.session() as s:
            queued = s.scalars(select(JobRunRow.id).where(
                JobRunRow.status == "queued",
                or_(JobRunRow.not_before.is_(None), JobRunRow.not_before <= now()))
                .order_by(JobRunRow.id)).all()
        for run_id in queued:
            try:
                self.jobs.start(run_id)
            except Exception:  # noqa: BLE001
                log.exception("starting job run %s", run_id)
        with self.store.session() as s:
            nxt = s.scalar(select(JobRow.next_fire_at).where(JobRow.enabled.is_(True),
                                                             JobRow.next_fire_at.is_not(None))
                           .order_by(JobRow.next_fire_at).limit(1))
            retry = s.scalar(select(JobRunRow.not_before).where(JobRunRow.status == "queued",
                                                                JobRunRow.not_before.is_not(None))
                             .order_by(JobRunRow.not_before).limit(1))
        times = [t for t in (aware(nxt), aware(retry)) if t is not None]
        return min(times) if times else None

    def _fire(self, job_id: int) -> None:
        at = now()
        with self.store.session() as s:
            job = s.get(JobRow, job_id)
            first = aware(job.next_fire_at) if job is not None else None
            if job is None or first is None or first > at or not job.schedule or not job.enabled:
                return
            expr, tz, policy = job.schedule, job.timezone, job.missed
        times = sched.fire_times_between(expr, tz, first, at) or [first]
        grace = self.settings.jobs.misfire_grace_s
        if len(times) == 1 and (at - times[0]).total_seconds() <= grace:
            run, missed = [times[0]], []
        elif policy == "run_once":
            run, missed = [times[-1]], times[:-1]
        else:
            run, missed = [], times
        for t in run:
            try:
                self.jobs.trigger(job_id, trigger="schedule", scheduled_for=t)
            except IntegrityError:
                log.info("job %s: the run of %s is already recorded", job_id, t.isoformat())
        with self.store.session() as s:
            job = s.get(JobRow, job_id)
            if job is None:
                return
            known = set(s.scalars(select(JobRunRow.scheduled_for).where(
                JobRunRow.job_id == job_id, JobRunRow.scheduled_for.in_(missed))).all()) if missed else set()
            known = {aware(k) for k in known}
            reason = ("the control plane was not running at this fire time"
                      + ("; the newest missed fire time ran instead" if policy == "run_once" else
                         " (the job's missed-run policy is 'skip')"))
            for t in missed:
                if t not in known:
                    s.add(JobRunRow(job_id=job_id, trigger="schedule", scheduled_for=t, status="missed",
                                    reason=reason, parameters=dict(job.parameters), runconfig=job.runconfig,
                                    config=job.config, config_hash="", created_at=now(), ended_at=now()))
            job.next_fire_at = sched.next_after(expr, tz, max(at, times[-1]))

    # ------------------------------------------------------------ the loop
    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="labwork-job-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        tick = float(self.settings.jobs.tick_s)
        while not self._stop.is_set():
            try:
                nxt = self.tick()
            except Exception:  # noqa: BLE001
                log.exception("job scheduler tick failed")
                nxt = None
            wait = tick
            if nxt is not None:
                wait = min(tick, max(0.005, (nxt - now()).total_seconds()))
            self._stop.wait(wait)

    def stop(self) -> None:
        """Stop the loop; running jobs keep running (they outlive the control plane)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
