"""What the control plane tells a server's labwork extension (labwork/lab/): the deadline and the
warning offsets (at start, extend and adoption), and the stop notice that lets every open
JupyterLab tab save its modified notebooks before the server stops (`save_before_stop`, called
from the manager's one stop path, so deadline, idle and user stops all save first).

Every call is tolerant: a server without the extension (404), or one that does not answer, is
logged and the stop goes on.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from labwork.notebooks.jupyter_api import lifecycle, push_lifecycle
from labwork.notebooks.rows import iso
from labwork.notebooks.rows import now as _now
from labwork.settings import Settings
from labwork.store.db import Store
from labwork.store.tables import ServerRow

POLL_S = 0.25  # how often the stop looks for the tabs' acks while it waits
MAX_LISTED = 10  # paths named in one log line


@dataclass(frozen=True)
class ServerRef:
    """A server's address, read out of its row (usable after the store's session ends)."""
    id: int
    url: str
    token: str
    deadline: str | None


def server_ref(store: Store, server_id: int) -> ServerRef | None:
    with store.session() as s:
        row = s.get(ServerRow, server_id)
        if row is None or not row.url or not row.token:
            return None
        return ServerRef(row.id, row.url, row.token, iso(row.deadline))


def push_deadline(store: Store, server_id: int, settings: Settings) -> dict[str, Any] | None:
    """Tell the server's extension its deadline (null = no limit) and when to warn."""
    ref = server_ref(store, server_id)
    if ref is None:
        return None
    return push_lifecycle(ref, {"deadline": ref.deadline, "warn_before_s": list(settings.warn_before_s)})


def _listed(paths: list[str]) -> str:
    shown = ", ".join(paths[:MAX_LISTED])
    return shown + (f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else "")


def save_before_stop(store: Store, server_id: int, reason: str, settings: Settings,
                     note: Callable[[str], None]) -> dict[str, Any]:
    """Push `stopping` to the server's extension, wait until every front end seen lately has said
    what it saved (or `settings.save_before_stop_s` passes), and `note` (the server log) the
    outcome. Returns {"clients", "acked", "saved", "failed"}; never raises."""
    out: dict[str, Any] = {"clients": 0, "acked": 0, "saved": [], "failed": []}
    wait = float(settings.save_before_stop_s)
    ref = server_ref(store, server_id)
    if ref is None or wait <= 0:
        return out
    stop_id = secrets.token_hex(8)
    save_by = _now() + timedelta(seconds=wait)
    state = push_lifecycle(ref, {"stopping": {"id": stop_id, "reason": reason, "save_by": iso(save_by)}})
    if state is None:
        note("save before stop: the server's labwork extension did not answer; nothing was saved for it")
        return out
    until = time.monotonic() + wait
    while True:
        acks = [a for a in state.get("acks") or [] if a.get("id") == stop_id]
        clients = max(int(state.get("clients") or 0), len({a.get("client") for a in acks}))
        if len(acks) >= clients or time.monotonic() >= until:
            break
        time.sleep(POLL_S)
        state = lifecycle(ref) or state
    out.update(clients=clients, acked=len(acks),
               saved=[p for a in acks for p in a.get("saved") or []],
               failed=[p for a in acks for p in a.get("failed") or []])
    note(_outcome(out, wait))
    return out


def _outcome(out: dict[str, Any], wait: float) -> str:
    if not out["clients"]:
        return "save before stop: no JupyterLab tab was open"
    parts = [f"saved {_listed(out['saved'])}" if out["saved"] else "nothing needed saving"]
    if out["failed"]:
        parts.append(f"could not save {_listed(out['failed'])}")
    missing = out["clients"] - out["acked"]
    if missing > 0:
        parts.append(f"{missing} of {out['clients']} tab(s) did not answer within {wait:g} s")
    return f"save before stop ({out['acked']} tab(s)): " + "; ".join(parts)
