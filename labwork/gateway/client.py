"""Talk to a gateway from the command line: the control plane's `/livy`, or a standalone URL."""
from __future__ import annotations

import os
from typing import Any

import httpx

from labwork import errors
from labwork.settings import Settings, load_settings


def gateway_request(method: str, path: str, *, url: str | None = None,
                    settings: Settings | None = None, json: Any = None,
                    params: dict | None = None) -> Any:
    """`METHOD path` on the gateway. Without `url`: the control plane's `/livy` (started in the
    background when absent). With `url`: that gateway, with HTTP Basic from
    LABWORK_GATEWAY_USER / LABWORK_GATEWAY_PASSWORD when set."""
    headers = {"X-Requested-By": "labwork-cli"}
    if url is None:
        from labwork.server.client import connect
        client = connect(settings or load_settings())
        try:
            return client.request(method, "/livy" + path, json=json, params=params,
                                  headers=headers)
        finally:
            client.close()
    auth = None
    user, password = os.environ.get("LABWORK_GATEWAY_USER"), os.environ.get("LABWORK_GATEWAY_PASSWORD")
    if password:
        auth = (user or "", password)
    try:
        r = httpx.request(method, url.rstrip("/") + path, json=json, params=params,
                          headers=headers, auth=auth, timeout=60)
    except httpx.HTTPError as exc:
        raise errors.Unavailable(f"the gateway at {url} did not answer: {exc}") from exc
    if r.status_code >= 400:
        try:
            msg = r.json().get("msg", r.text)
        except ValueError:
            msg = r.text
        cls = {404: errors.NotFound, 401: errors.Forbidden, 403: errors.Forbidden}.get(
            r.status_code, errors.LabworkError)
        raise cls(str(msg), where=url)
    return r.json() if r.content else None


def list_sessions(*, url: str | None = None, settings: Settings | None = None) -> list[dict]:
    """Every session on the gateway (all pages)."""
    out: list[dict] = []
    start = 0
    while True:
        page = gateway_request("GET", "/sessions", url=url, settings=settings,
                               params={"from": start, "size": 200})
        items = page.get("sessions") or []
        out.extend(items)
        start += len(items)
        if not items or start >= int(page.get("total") or 0):
            return out


def kill_session(session: str, *, url: str | None = None, settings: Settings | None = None) -> dict:
    """Delete one session (by id or name)."""
    return gateway_request("DELETE", f"/sessions/{session}", url=url, settings=settings)
