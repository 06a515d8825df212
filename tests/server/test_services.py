"""The composition: one typed `Services`, each part given its real collaborators."""
from __future__ import annotations

from pathlib import Path

import httpx

from labwork.gateway.gateway import Gateway
from labwork.server.services import build_services
from labwork.settings import load_settings
from tests.support import ControlPlane


def test_services_are_wired_with_their_real_collaborators(tmp_path: Path) -> None:
    """History → gateway → servers → dashboard: each one holds the others it uses, not a lookup."""
    settings = load_settings(flags={"home": str(tmp_path / "home")}, environ={})
    services = build_services(settings, url="http://127.0.0.1:1")
    try:
        assert isinstance(services.gateway, Gateway)
        assert services.gateway.on_statement == services.history.record_gateway_statement
        assert services.gateway.on_session_end == services.history.end_gateway_session
        assert services.history.livy is services.gateway
        assert services.servers.project_sessions is services.gateway
        assert services.servers.url == "http://127.0.0.1:1"
        dash = services.dashboard
        assert (dash.servers, dash.gateway, dash.history, dash.store, dash.web_sessions) == (
            services.servers, services.gateway, services.history, services.store, services.web_sessions)
        assert services.jobs.store is services.store and services.jobs.settings is settings
        assert services.jobs.control_url() == "http://127.0.0.1:1"
        # the gateway has not started: a stop deletes nothing and says so with 0
        assert services.servers.project_sessions.delete_project_sessions_sync(str(tmp_path)) == 0
        assert services.startup and len(services.startup) == len(services.shutdown)
    finally:
        services.store.dispose()


def test_status_lists_the_services(control_plane: ControlPlane) -> None:
    r = httpx.get(control_plane.url + "/api/status", headers=control_plane.headers())
    assert r.status_code == 200
    assert r.json()["parts"] == ["accounts", "dashboard", "gateway", "gateway_app", "history", "jobs", "servers",
                                 "settings", "store", "web_sessions"]
