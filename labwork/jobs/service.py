"""The jobs part's one wiring function: `attach` makes the `Jobs` library and its scheduler from
typed collaborators, includes the API routes and the dashboard's Jobs pages, and registers the
start-up (adopt runs left running, start the cron loop) and shut-down (stop the loop) hooks."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from labwork.jobs.library import Jobs
from labwork.jobs.scheduler import Scheduler
from labwork.settings import Settings
from labwork.store.db import Store


def attach(app: FastAPI, *, settings: Settings, store: Store, control_url: Callable[[], str],
           startup: list[Callable[[], Any]], shutdown: list[Callable[[], Any]]) -> Jobs:
    """Plug jobs into the control plane; returns the `Jobs` object (the scheduler is `jobs.scheduler`)."""
    from labwork.dashboard import jobs_pages
    from labwork.jobs import routes
    from labwork.notebooks.manager import kernel_environment

    jobs = Jobs(settings, store, control_url=control_url, environment=kernel_environment)
    scheduler = Scheduler(jobs)
    jobs.scheduler = scheduler

    async def _startup() -> None:
        await asyncio.to_thread(jobs.executor.adopt)
        scheduler.start()

    async def _shutdown() -> None:
        await asyncio.to_thread(scheduler.stop)

    startup.append(_startup)
    shutdown.append(_shutdown)
    app.include_router(routes.router(jobs))
    app.include_router(jobs_pages.router(jobs), include_in_schema=False)
    return jobs
