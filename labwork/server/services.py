"""The control plane's services: one typed object built once by `create_app` (kept on
`app.state.services`), so every part gets its collaborators by name and type, never by string.

Build order (`build_services`): run history → the gateway (with history's statement and
session-end hooks) → the server manager (with the gateway, which deletes a stopped project's Spark
sessions) → the dashboard (with all three). Routes reach them through `labwork.server.deps`; a
part's own routes through its own typed dependency (`labwork.history.service.history`,
`labwork.dashboard.web.dashboard_of`).
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from fastapi import FastAPI

from labwork.auth.accounts import Accounts
from labwork.auth.sessions import WebSessions
from labwork.auth.token import load_or_create_token
from labwork.dashboard.state import Dashboard
from labwork.gateway.gateway import Gateway
from labwork.history.service import HistoryService
from labwork.jobs.library import Jobs
from labwork.notebooks.manager import ServerManager
from labwork.settings import Settings
from labwork.store.db import Store

Hook = Callable[[], Any]


@dataclass
class Services:
    """Everything long-lived in one control plane, and its start-up / shut-down hooks (run in
    order at start-up, in reverse at shut-down)."""

    settings: Settings
    store: Store
    token: str
    url: str  # the control plane's own base URL, once known
    web_sessions: WebSessions
    accounts: Accounts  # users, personal tokens, authenticator, log-in limits
    history: HistoryService
    gateway: Gateway
    gateway_app: FastAPI  # the gateway's Livy API, mounted at /livy
    servers: ServerManager
    jobs: Jobs
    dashboard: Dashboard
    startup: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)

    def names(self) -> list[str]:
        """The services' names (what `/api/status` lists as its parts): every field but the
        plain values (token, url) and the hook lists."""
        return sorted(f.name for f in fields(self) if f.name not in ("token", "url", "startup", "shutdown"))


def build_services(settings: Settings, *, url: str = "") -> Services:
    """Make every service of a control plane, collaborators passed in (see the module docstring)."""
    from labwork.gateway.mount import create_gateway
    from labwork.jobs.service import make_jobs
    from labwork.notebooks import service as notebooks
    from labwork.notebooks.launch import server_environment
    from labwork.server.livy_access import access_for

    store = Store(settings.db_url)
    token = load_or_create_token(settings.token_file)
    web_sessions = WebSessions(store, token, settings.session_hours * 3600)
    accounts = Accounts(store, token=token, key_file=settings.home / "token_key", settings=settings.auth,
                        web_sessions=web_sessions)
    accounts.announce_first_admin(lambda msg: print(f"labwork: {msg}", file=sys.stderr, flush=True))
    history = HistoryService(settings, store)
    # Statements of a project's Spark kernels become run-history entries (when history is on); a
    # session that ends (deleted, its driver dead, failed to start) ends its run.
    gateway, gateway_app = create_gateway(settings, on_statement=history.record_gateway_statement,
                                          on_session_end=history.end_gateway_session,
                                          access=access_for(store))
    history.livy = gateway  # the reaper spares the runs of sessions still open
    servers = ServerManager(settings, store, url=url, project_sessions=gateway,
                            kernel_token=accounts.server_token)
    dashboard = Dashboard(settings=settings, store=store, token=token, web_sessions=web_sessions,
                          accounts=accounts, servers=servers, gateway=gateway, history=history)
    services = Services(settings=settings, store=store, token=token, url=url, web_sessions=web_sessions,
                        accounts=accounts, history=history, gateway=gateway, gateway_app=gateway_app, servers=servers,
                        jobs=None, dashboard=dashboard)  # type: ignore[arg-type]  # set below
    # Jobs run notebooks through the project's kernels, with a Jupyter server's environment.
    services.jobs = make_jobs(settings, store, control_url=lambda: services.url,
                              environment=server_environment, startup=services.startup,
                              shutdown=services.shutdown, run_token=accounts.job_run_token)
    notebooks.attach(servers, startup=services.startup, shutdown=services.shutdown)
    services.startup += [history.start, gateway.ensure_started]
    services.shutdown += [history.stop, gateway.stop]
    return services
