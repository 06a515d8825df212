"""The extension's calls to the control plane: Extend. Found and authorized as a kernel's run
history finds it (labwork.history.context): `LABWORK_URL` (else LABWORK_HOME/control.json's url)
and the token in LABWORK_HOME/token; this server is `LABWORK_SERVER_ID`. The token is sent in the
`Authorization` header only and never reaches the browser."""
from __future__ import annotations

from urllib.parse import quote

import json
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from labwork import envvars
from labwork.errors import LabworkError, NotFound, Unavailable

TIMEOUT_S = 30.0


def _control() -> tuple[str, str, str]:
    """(control plane url, token, server id), or Unavailable saying which is missing."""
    home = envvars.home()
    url = envvars.get(envvars.URL)
    if not url:
        try:
            url = json.loads((home / "control.json").read_text()).get("url")
        except (OSError, ValueError, AttributeError):
            url = None
    try:
        token = (home / "token").read_text().strip()
    except OSError:
        token = ""
    server_id = envvars.get(envvars.SERVER_ID) or ""
    if not url or not token or not server_id:
        missing = ", ".join(n for n, v in (("the control plane's address", url), ("its token", token),
                                           ("this server's id", server_id)) if not v)
        raise Unavailable(f"this Jupyter server was not started by a labwork control plane ({missing} unknown)",
                          where="labwork/extend", hint="extend it with 'labwork notebook extend'",
                          hints={"dashboard": "press Extend on the project's Jupyter page"})
    return url.rstrip("/"), token, server_id


async def _call(method: str, url: str, token: str, body: Any = None) -> Any:
    client = AsyncHTTPClient()
    try:
        r = await client.fetch(url, method=method, raise_error=False, request_timeout=TIMEOUT_S,
                               headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                        "Content-Type": "application/json"},
                               body=None if body is None else json.dumps(body))
    except (OSError, HTTPClientError) as exc:
        raise Unavailable(f"the control plane did not answer: {exc}", where=url) from exc
    try:
        data = json.loads(r.body or b"null")
    except ValueError:
        data = None
    if r.code == 599:
        raise Unavailable(f"the control plane did not answer: {r.error}", where=url)
    if r.code >= 400:
        raise LabworkError.from_dict(data if data is not None else (r.body or b"").decode(errors="replace"), r.code)
    return data


async def extend_server(hours: float) -> str | None:
    """Extend this server by `hours` through the control plane; its new deadline (ISO or None)."""
    url, token, server_id = _control()
    servers = await _call("GET", f"{url}/api/servers", token)
    mine = next((s for s in servers or [] if str(s.get("id")) == server_id), None)
    project = (mine or {}).get("project") or {}
    if project.get("id") is None:
        raise NotFound(f"the control plane does not list server {server_id} as running", where=url)
    whose = f"?user={quote(mine['user'])}" if (mine or {}).get("user") else ""  # this server's user
    status = await _call("POST", f"{url}/api/projects/{project['id']}/server/extend{whose}", token, {"hours": hours})
    return (status or {}).get("deadline")
