"""The CLI's way to the control plane: found through LABWORK_HOME, started when absent."""
from __future__ import annotations

import sys
from typing import Any

import httpx

from labwork import errors
from labwork.auth.token import load_or_create_token
from labwork.server.daemon import lock_held, other_on_port, running, start_background, wait_running
from labwork.settings import Settings, load_settings


class ControlClient:
    def __init__(self, base_url: str, token: str, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"})

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                **kwargs: Any) -> Any:
        """Send a request; error answers become the matching LabworkError."""
        try:
            r = self._http.request(method, path, json=json, params=params, **kwargs)
        except httpx.HTTPError as exc:
            raise errors.Unavailable(f"control plane at {self.base_url} did not answer: {exc}") from exc
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"msg": r.text}
            raise errors.LabworkError.from_dict(body, r.status_code)
        if not r.content:
            return None
        ctype = r.headers.get("content-type", "")
        return r.json() if "json" in ctype else r.text

    def stream(self, method: str, path: str, **kwargs: Any):
        return self._http.stream(method, path, **kwargs)

    def close(self) -> None:
        self._http.close()


def connect(settings: Settings | None = None, *, autostart: bool = True, quiet: bool = False) -> ControlClient:
    """A client for this LABWORK_HOME's control plane: the running one, the one still starting
    (waited for), or one started in the background; says so when another LABWORK_HOME's control
    plane holds the port."""
    settings = settings or load_settings()
    say = (lambda _msg: None) if quiet else (lambda msg: print(f"labwork: {msg}", file=sys.stderr))
    info = running(settings)
    if info is None and lock_held(settings):
        say(f"the control plane for {settings.home} is starting; waiting for it")
        info = wait_running(settings)
    if info is None:
        if not autostart:
            raise errors.Unavailable(f"no control plane runs for {settings.home}",
                                     hint="start one with 'labwork serve'")
        other = other_on_port(settings)
        if other and other["home"]:
            say(f"the control plane for {other['home']} holds {other['url']}, not this LABWORK_HOME "
                f"({settings.home}); to use that one, set LABWORK_HOME={other['home']}")
        elif other:
            say(f"{other['url']} is taken by another program (perhaps the control plane of another "
                f"LABWORK_HOME), not by the one for {settings.home}")
        say(f"no control plane runs for {settings.home}; starting one in the background "
            f"(log: {settings.logs_dir / 'control.log'})")
        info = start_background(settings)
        say(f"control plane for {settings.home} started at {info['url']}")
        say(f"dashboard: {dashboard_url(settings, info['url'])}")
    return ControlClient(info["url"], load_or_create_token(settings.token_file))


def dashboard_url(settings: Settings, url: str) -> str:
    """The dashboard's address with the token for a person at a terminal; elsewhere (output that
    may land in a log) without it, naming the token file instead."""
    if sys.stderr.isatty():
        return f"{url}/?token={load_or_create_token(settings.token_file)}"
    return f"{url}/ (token in {settings.token_file})"
