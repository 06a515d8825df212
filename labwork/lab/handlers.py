"""The extension's endpoints under `<base_url>labwork/`, behind Jupyter's own authentication
(`@web.authenticated` + `@authorized`: the token, or the browser's Jupyter session with XSRF on
changes). Bad input answers a `LabworkError`'s JSON with its status, never a traceback.

    GET  labwork/lifecycle[?client=<id>]   the state (and the front end `client` was seen)
    PUT  labwork/lifecycle                 the control plane pushes deadline / warn_before_s /
                                           idle / notice / stopping (merged, then an event)
    POST labwork/extend {"hours": 6}       extends through the control plane; the new state
    POST labwork/saved {"id", "client", "saved", "failed"}   a front end's saves before a stop
"""
from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from labwork.errors import ConfigError, LabworkError
from labwork.lab.control import extend_server
from labwork.lab.extension import LabExtension

AUTH_RESOURCE = "labwork"
MAX_BODY = 1_000_000


class _Base(APIHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, ext: LabExtension) -> None:
        self.ext = ext

    def _body(self) -> Any:
        raw = self.request.body or b""
        if len(raw) > MAX_BODY:
            raise ConfigError("the body is larger than 1 MB", where=self.request.path)
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"the body is not JSON: {exc}", where=self.request.path) from exc

    def _answer(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data))

    def _error(self, exc: LabworkError) -> None:
        self._answer(exc.to_dict(), exc.http_status)


class LifecycleHandler(_Base):
    # the tabs' polls (every 10 s, even from a tab in the background) and the control plane's
    # pushes are not a person's activity: they never keep a server from its idle stop
    _track_activity = False

    @web.authenticated
    @authorized
    def get(self) -> None:
        self.ext.state.saw(self.get_argument("client", None))
        self._answer(self.ext.answer())

    @web.authenticated
    @authorized
    def put(self) -> None:
        try:
            self._answer(self.ext.pushed(self._body()))
        except LabworkError as exc:
            self._error(exc)


class ExtendHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            body = self._body()
            hours = body.get("hours", 6) if isinstance(body, dict) else None
            if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0:
                raise ConfigError(f"'hours' must be a number of hours above 0, got {hours!r}", where="extend")
            deadline = await extend_server(float(hours))
            self._answer(self.ext.set_deadline(deadline))
        except LabworkError as exc:
            self._error(exc)


class SavedHandler(_Base):
    @web.authenticated
    @authorized
    def post(self) -> None:
        try:
            ack = self.ext.state.ack(self._body())
        except LabworkError as exc:
            self._error(exc)
            return
        self.log.info("labwork: client %s saved %d file(s) before the stop (%d failed)",
                      ack["client"], len(ack["saved"]), len(ack["failed"]))
        self._answer(self.ext.answer())


def handlers(base_url: str, ext: LabExtension) -> list[tuple[str, type, dict[str, Any]]]:
    args = {"ext": ext}
    return [(url_path_join(base_url, "labwork", name), cls, args)
            for name, cls in (("lifecycle", LifecycleHandler), ("extend", ExtendHandler), ("saved", SavedHandler))]
