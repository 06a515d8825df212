"""The jobs part's one wiring function: `make_jobs` makes the `Jobs` library and its scheduler from
typed collaborators and registers the start-up (adopt runs left running, start the cron loop) and
shut-down (stop the loop) hooks. The control plane (`labwork.server`) includes its API routes
(`labwork.jobs.routes.router`) and the dashboard's Jobs pages (`labwork.dashboard.jobs_pages`)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from labwork.jobs.library import Jobs
from labwork.jobs.scheduler import Scheduler
from labwork.settings import Settings
from labwork.store.db import Store


def make_jobs(settings: Settings, store: Store, *, control_url: Callable[[], str],
              environment: Callable[..., dict[str, str]],
              startup: list[Callable[[], Any]], shutdown: list[Callable[[], Any]],
              run_token: Callable[[str], str | None] | None = None) -> Jobs:
    """The control plane's `Jobs` (its scheduler is `jobs.scheduler`), hooks appended to the lists;
    `run_token(name)` makes the personal token a run's kernels get as LABWORK_TOKEN."""
    jobs = Jobs(settings, store, control_url=control_url, environment=environment, run_token=run_token)
    scheduler = Scheduler(jobs)
    jobs.scheduler = scheduler

    async def _startup() -> None:
        await asyncio.to_thread(jobs.executor.adopt)
        scheduler.start()

    async def _shutdown() -> None:
        await asyncio.to_thread(scheduler.stop)

    startup.append(_startup)
    shutdown.append(_shutdown)
    return jobs
