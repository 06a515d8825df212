"""The CLI's way to the control plane: found through LABWORK_HOME, started when absent."""
from __future__ import annotations

import http.client
import json as jsonlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from labwork import envvars, errors
from labwork.auth.token import load_or_create_token
from labwork.server.daemon import lock_held, other_on_port, running, running_at, start_background, wait_running

if TYPE_CHECKING:  # built only when the control plane is to be found the long way (or started)
    from labwork.settings import Settings


class ControlClient:
    """The control plane's API over one kept-open connection. Plain `http.client`: every command
    of the CLI goes through here, and httpx (with the click/rich it imports) costs a noticeable
    part of a short command's time; `stream` alone, for large downloads, uses httpx."""

    def __init__(self, base_url: str, token: str, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        parts = urlsplit(self.base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._conn: http.client.HTTPConnection | None = None
        self._http: Any = None  # the httpx client of `stream`, made when first needed

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]
              ) -> tuple[int, str, bytes]:
        for attempt in (1, 2):  # a kept-open connection the server closed meanwhile is reopened once
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            try:
                self._conn.request(method, path, body=body, headers=headers)
                r = self._conn.getresponse()
                return r.status, r.getheader("content-type", ""), r.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                headers: dict[str, str] | None = None) -> Any:
        """Send a request; error answers become the matching LabworkError."""
        if params:
            query = {k: ("true" if v is True else "false" if v is False else v)
                     for k, v in params.items() if v is not None}
            path += ("&" if "?" in path else "?") + urlencode(query, doseq=True)
        hdrs = {"Authorization": f"Bearer {self.token}", "Accept": "application/json", **(headers or {})}
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            hdrs["Content-Type"] = "application/json"
        try:
            status, ctype, content = self._send(method, path, body, hdrs)
        except (OSError, http.client.HTTPException) as exc:
            raise errors.Unavailable(f"control plane at {self.base_url} did not answer: "
                                     f"{exc or type(exc).__name__}") from exc
        text = content.decode("utf-8", "replace")
        if status >= 400:
            try:
                answer = jsonlib.loads(text)
            except ValueError:
                answer = {"msg": text}
            if not isinstance(answer, dict):
                answer = {"msg": text}
            raise errors.LabworkError.from_dict(answer, status)
        if not content:
            return None
        return jsonlib.loads(text) if "json" in ctype else text

    def stream(self, method: str, path: str, **kwargs: Any):
        """An httpx streaming response (a context manager), for downloads too large to hold."""
        if self._http is None:
            import httpx
            self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout,
                                      headers={"Authorization": f"Bearer {self.token}"})
        return self._http.stream(method, path, **kwargs)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._http is not None:
            self._http.close()
            self._http = None


def connect(settings: Settings | None = None, *, autostart: bool = True, quiet: bool = False) -> ControlClient:
    """A client for this LABWORK_HOME's control plane: the running one, the one still starting
    (waited for), or one started in the background; says so when another LABWORK_HOME's control
    plane holds the port."""
    if settings is None:
        info = _running_as_found()
        if info is not None:
            return ControlClient(info["url"], load_or_create_token(Path(info["home"]) / "token"))
        from labwork.settings import load_settings
        settings = load_settings()
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
    personal = envvars.get(envvars.API_TOKEN)  # act as that user rather than as the first admin
    return ControlClient(info["url"], personal or load_or_create_token(settings.token_file))


def _running_as_found() -> dict[str, Any] | None:
    """The running control plane of LABWORK_HOME found without the settings model (its import
    and validation are most of a short command's own time), when nothing the model checks could
    change the answer: no `LABWORK_*` variable but the registered ones (a setting, or a typo the
    model names, takes the long way), and no config.toml edited since the control plane started
    (it validated the one before). None: find it the long way (`load_settings`)."""
    if any(key.startswith(envvars.PREFIX) and not key.startswith(envvars.TEST_PREFIX)
           and key not in envvars.KERNEL_VARIABLES for key in os.environ):
        return None
    home = envvars.home()
    try:
        started = (home / "control.json").stat().st_mtime
    except OSError:
        return None
    try:
        if (home / "config.toml").stat().st_mtime >= started:
            return None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    info = running_at(home)
    return {**info, "home": str(home)} if info is not None else None


def dashboard_url(settings: Settings, url: str) -> str:
    """The dashboard's address with the token for a person at a terminal; elsewhere (output that
    may land in a log) without it, naming the token file instead."""
    if sys.stderr.isatty():
        return f"{url}/?token={load_or_create_token(settings.token_file)}"
    return f"{url}/ (token in {settings.token_file})"
