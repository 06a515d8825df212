"""Opening a notebook from the dashboard's recent list: the URL on the user's server of the
project, started with the configuration the notebook last ran with when none is serving."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from labwork.auth.users import UserRef
from labwork.errors import Conflict, Unavailable
from labwork.notebooks.config import parse_config
from labwork.notebooks.models import OpenResult, ServerStatus
from labwork.notebooks.preview import notebook_in_project
from labwork.notebooks.recent import last_config
from labwork.notebooks.rows import notebook_url, proxy_ui_url
from labwork.store.tables import ServerRow

if TYPE_CHECKING:  # the manager calls this module: no import back at run time
    from labwork.notebooks.manager import ServerManager


def open_notebook(servers: ServerManager, project: dict[str, Any], notebook: str,
                  user: UserRef | None) -> dict[str, Any]:
    """`ServerManager.open_notebook`'s work: a running server is reused (with a note when its
    configuration differs from the notebook's last one), none is started with that one."""
    root = Path(project["path"]).resolve()
    rel = notebook_in_project(root, notebook).relative_to(root).as_posix()
    uid = user.id if user is not None else None
    wanted = last_config(servers.store, project, rel, uid)
    note = None
    started = False
    if not servers.is_serving(project["id"], uid):
        try:
            servers.start(project["id"], wanted, user=user)
            started = True
        except Conflict:
            pass  # started meanwhile (another tab): reuse it
    status = servers.status(project["id"], kernels=False, user=user)
    if status["state"] != "running":
        raise Unavailable(f"the project's server is {status['state']}", hint="try again in a moment")
    if wanted is not None and not parse_config(status["config"]).same_runtime(parse_config(wanted)):
        note = ("the running server's configuration differs from the one this notebook last ran with; "
                "stop the server and open the notebook again to use that one")
    with servers.store.session() as s:
        row = s.get(ServerRow, status["id"])
        url, proxied = notebook_url(row, rel), proxy_ui_url(row, rel)
    return OpenResult(notebook=rel, url=url, proxy_url=proxied, started=started, config=status["config"],
                      last_config=wanted, note=note, server=ServerStatus(**status)).model_dump(mode="json")
