"""A small client of a Jupyter server's REST API: does it answer, its kernels, shut it down.

The manager and `LocalProcess` talk to a server only through this, with the server's token in the
`Authorization` header (never in a URL that could land in a log).
"""
from __future__ import annotations

from typing import Any

import httpx


class JupyterApi:
    """One Jupyter server at `base_url` (http://127.0.0.1:<port>); a kept-open connection, so a
    readiness poll costs one request per try. Use as a context manager or call `close()`."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 3.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout,
                                  headers={"Authorization": f"token {token}"})

    def __enter__(self) -> JupyterApi:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def answers(self, timeout: float | None = None) -> bool:
        """Whether /api/status answers 200 (a server that is up and accepts our token)."""
        try:
            kw = {"timeout": timeout} if timeout is not None else {}
            return self._http.get("/api/status", **kw).status_code == 200
        except httpx.HTTPError:
            return False

    def _json(self, path: str) -> Any:
        try:
            r = self._http.get(path)
            return r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def kernels(self) -> list[dict[str, Any]]:
        """/api/kernels: [] when the server does not answer."""
        out = self._json("/api/kernels")
        return [k for k in out if isinstance(k, dict)] if isinstance(out, list) else []

    def sessions(self) -> list[dict[str, Any]]:
        """/api/sessions (which notebook each kernel serves): [] when the server does not answer."""
        out = self._json("/api/sessions")
        return [s for s in out if isinstance(s, dict)] if isinstance(out, list) else []

    def kernelspecs(self) -> dict[str, Any]:
        """/api/kernelspecs' `kernelspecs` map (name → spec record)."""
        out = self._json("/api/kernelspecs")
        specs = out.get("kernelspecs") if isinstance(out, dict) else None
        return specs if isinstance(specs, dict) else {}

    def shutdown(self, timeout: float = 10.0) -> str | None:
        """Ask the server to shut down cleanly (its kernels too); None when asked, else the error."""
        try:
            self._http.post("/api/shutdown", timeout=timeout)
        except httpx.HTTPError as exc:
            return str(exc) or type(exc).__name__
        return None
