"""What the dashboard's pages read, set at composition (`labwork.server.services`): the services
they show (servers, gateway, run history, the store) and the dashboard's own long-lived state
(jobs, environment checks, previews). Pages reach it through `labwork.dashboard.web.dashboard_of`."""
from __future__ import annotations

from dataclasses import dataclass, field

from labwork.auth.accounts import Accounts
from labwork.auth.sessions import WebSessions
from labwork.dashboard.envcache import EnvChecks
from labwork.dashboard.jobs import Jobs
from labwork.dashboard.previews import PreviewCache
from labwork.dashboard.targetcache import TargetStates
from labwork.gateway.gateway import Gateway
from labwork.history.service import HistoryService
from labwork.notebooks.manager import ServerManager
from labwork.settings import Settings
from labwork.store.db import Store


@dataclass
class Dashboard:
    """The dashboard's collaborators and state (one per control plane: `Services.dashboard`)."""

    settings: Settings
    store: Store
    token: str  # the in-process Livy calls (logs, kill) authenticate with it
    web_sessions: WebSessions
    accounts: Accounts  # users: log-in, the Members section
    servers: ServerManager
    gateway: Gateway
    history: HistoryService
    jobs: Jobs = field(default_factory=Jobs)
    env_checks: EnvChecks = field(default_factory=EnvChecks)
    previews: PreviewCache = field(default_factory=PreviewCache)
    target_states: TargetStates = field(default_factory=TargetStates)
