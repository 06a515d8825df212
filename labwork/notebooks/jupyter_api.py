"""A small client of a Jupyter server's REST API: does it answer, its kernels, its activity, shut it
down; and labwork's extension on it (`push_lifecycle`, `lifecycle`: labwork/lab/, the
`labwork/lifecycle` endpoint, issue 13's contract).

The manager and `LocalProcess` talk to a server only through this, with the server's token in the
`Authorization` header (never in a URL that could land in a log). What the control plane reads to
watch a server carries `no_track_activity`, Jupyter's own flag for requests that are not a
person's activity, so watching a server never keeps it from being idle.
"""
from __future__ import annotations

import http.client
import json
import logging
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger("labwork.notebooks")

Failed = (OSError, http.client.HTTPException, ValueError)  # refused, timed out, cut off, not JSON
UNTRACKED = "no_track_activity=1"
LIFECYCLE = f"/labwork/lifecycle?{UNTRACKED}"


class JupyterApi:
    """One Jupyter server at `base_url` (http://127.0.0.1:<port>); a kept-open connection, so a
    readiness poll costs one request per try. Plain `http.client`: the poll runs while the new
    server starts on the same cores, and httpx costs a TLS context for a plain-HTTP address and
    more work per try. Use as a context manager or call `close()`."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 3.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        parts = urlsplit(self.base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._prefix = parts.path.rstrip("/")  # the server's base_url ("/user/alice/p"), if any
        self._headers = {"Authorization": f"token {token}", "Accept": "application/json"}
        self._conn: http.client.HTTPConnection | None = None

    def __enter__(self) -> JupyterApi:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(self, method: str, path: str, timeout: float | None = None,
                 body: Any = None) -> tuple[int, bytes]:
        """(status, body); `body` is sent as JSON; raises one of `Failed` (the connection is then
        closed, and the next request opens a new one)."""
        wait = self.timeout if timeout is None else timeout
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=wait)
        conn = self._conn
        path = self._prefix + path
        conn.timeout = wait
        if conn.sock is not None:
            conn.sock.settimeout(wait)
        try:
            if body is None:
                conn.request(method, path, headers=self._headers)
            else:
                conn.request(method, path, body=json.dumps(body).encode(),
                             headers=self._headers | {"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, r.read()
        except BaseException:
            self.close()
            raise

    def answers(self, timeout: float | None = None) -> bool:
        """Whether /api/status answers 200 (a server that is up and accepts our token)."""
        try:
            return self._request("GET", "/api/status", timeout)[0] == 200
        except Failed:
            return False

    def _json(self, path: str) -> Any:
        try:
            status, body = self._request("GET", path)
            return json.loads(body) if status == 200 else None
        except Failed:
            return None

    def _list(self, path: str) -> list[dict[str, Any]] | None:
        """A listing read without counting as activity; None when the server does not answer."""
        out = self._json(f"{path}?{UNTRACKED}")
        return [x for x in out if isinstance(x, dict)] if isinstance(out, list) else None

    def kernels(self) -> list[dict[str, Any]]:
        """/api/kernels: [] when the server does not answer."""
        return self._list("/api/kernels") or []

    def sessions(self) -> list[dict[str, Any]]:
        """/api/sessions (which notebook each kernel serves): [] when the server does not answer."""
        return self._list("/api/sessions") or []

    def status(self) -> dict[str, Any] | None:
        """/api/status (started, last_activity, connections, kernels); None when it does not answer."""
        out = self._json(f"/api/status?{UNTRACKED}")
        return out if isinstance(out, dict) else None

    def watched_kernels(self) -> list[dict[str, Any]] | None:
        """/api/kernels, None (not []) when the server does not answer."""
        return self._list("/api/kernels")

    def terminals(self) -> list[dict[str, Any]]:
        """/api/terminals (each with its last_activity): [] when the server has no terminals (or
        they are disabled) or does not answer."""
        return self._list("/api/terminals") or []

    def kernelspecs(self) -> dict[str, Any]:
        """/api/kernelspecs' `kernelspecs` map (name → spec record)."""
        out = self._json(f"/api/kernelspecs?{UNTRACKED}")
        specs = out.get("kernelspecs") if isinstance(out, dict) else None
        return specs if isinstance(specs, dict) else {}

    def shutdown(self, timeout: float = 10.0) -> str | None:
        """Ask the server to shut down cleanly (its kernels too); None when asked, else the error."""
        try:
            self._request("POST", "/api/shutdown", timeout)
        except Failed as exc:
            return str(exc) or type(exc).__name__
        return None

    def lifecycle(self, state: dict[str, Any] | None = None, timeout: float | None = None
                  ) -> tuple[int, Any]:
        """GET (or, with `state`, PUT) labwork/lifecycle: (status, JSON or None); (0, None) when
        the server does not answer."""
        try:
            status, body = self._request("GET" if state is None else "PUT", LIFECYCLE, timeout, state)
        except Failed:
            return 0, None
        try:
            return status, json.loads(body)
        except ValueError:
            return status, None


class ServerAddress(Protocol):
    """What the lifecycle calls need of a server (a `ServerRow`)."""
    id: int
    url: str
    token: str


def _lifecycle(row: ServerAddress, state: dict[str, Any] | None, timeout: float) -> dict[str, Any] | None:
    if not row.url or not row.token:
        return None
    with JupyterApi(row.url, row.token, timeout=timeout) as api:
        status, data = api.lifecycle(state)
    if status == 200 and isinstance(data, dict):
        return data
    what = "push to" if state is not None else "read"
    if status == 404:
        log.info("server %s has no labwork extension (404 on %s): nothing to %s", row.id, LIFECYCLE, what)
    elif status:
        log.warning("server %s answered %s to the lifecycle %s: %s", row.id, status, what,
                    (data or {}).get("msg") if isinstance(data, dict) else data)
    else:
        log.info("server %s did not answer the lifecycle %s", row.id, what)
    return None


def push_lifecycle(row: ServerAddress, state: dict[str, Any], timeout: float = 5.0) -> dict[str, Any] | None:
    """Merge `state` (deadline, warn_before_s, idle, notice, stopping) into the server's lifecycle;
    its new state, or None (logged, never raised) when it lacks the extension or does not answer."""
    return _lifecycle(row, state, timeout)


def lifecycle(row: ServerAddress, timeout: float = 3.0) -> dict[str, Any] | None:
    """The server's lifecycle state (acks, clients, kernels' ends), or None as `push_lifecycle`."""
    return _lifecycle(row, None, timeout)
