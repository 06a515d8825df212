"""labwork's Jupyter server extension: the lifecycle of this server as its front ends see it.

Loaded on every Jupyter server labwork starts (`--ServerApp.jpserver_extensions`, see
labwork/notebooks/launch.py). It keeps a `Lifecycle` (labwork/lab/state.py) that the control plane
pushes (`PUT labwork/lifecycle` with the server's token) and front ends read (`GET`, at most every
10 s per tab), and emits every change as a Jupyter event (`SCHEMA_ID`), which JupyterLab hears at
once over `/api/events/subscribe`. It watches the server's kernel-ends file
(labwork.kernels.ends, `LABWORK_KERNEL_ENDS`) and emits each new end, so "why the kernel died"
reaches the notebook the moment the end is recorded.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from tornado.ioloop import PeriodicCallback

from labwork.kernels.ends import KernelEnd, ends_path, read_ends
from labwork.lab.state import Lifecycle

SCHEMA_ID = "https://labwork.dev/events/lifecycle/v1"
SCHEMA_PATH = Path(__file__).with_name("events") / "lifecycle.yaml"
ENDS_POLL_MS = 1000  # one stat() a second
MAX_KERNELS = 100

log = logging.getLogger("labwork.lab")


class LabExtension:
    """The extension's state on one Jupyter server (`serverapp`)."""

    def __init__(self, serverapp: Any, ends_file: Path | None = None) -> None:
        self.serverapp = serverapp
        self.state = Lifecycle()
        self.ends_file = ends_file
        self._ends_mark: tuple[float, int] | None = None
        self._ends_seen = 0
        self._watch: PeriodicCallback | None = None

    # ------------------------------------------------------------------ the answer
    def kernels(self) -> dict[str, Any]:
        """Running kernels with their run configuration, and recorded ends (the latest per id)."""
        out: dict[str, dict[str, Any]] = {}
        ends: dict[str, KernelEnd] = {e.kernel_id: e for e in read_ends(self.ends_file)} if self.ends_file else {}
        km = self.serverapp.kernel_manager
        for kid in list(km.list_kernel_ids())[:MAX_KERNELS]:
            out[kid] = {"run_config": self._run_config(km, kid), "end": None}
        for kid, end in list(ends.items())[-MAX_KERNELS:]:
            entry = out.setdefault(kid, {"run_config": end.run_config, "end": None})
            entry["end"] = end.to_dict()
            entry["run_config"] = entry["run_config"] or end.run_config
        return out

    @staticmethod
    def _run_config(km: Any, kid: str) -> str | None:
        """The run configuration in the kernel spec's labwork metadata (labwork.kernels.specs)."""
        try:
            spec = km.get_kernel(kid).kernel_spec
            return ((spec.metadata or {}).get("labwork") or {}).get("runconfig")
        except Exception:  # noqa: BLE001 - a kernel without a spec (or gone meanwhile) has none
            return None

    def answer(self) -> dict[str, Any]:
        return self.state.to_dict(self.kernels())

    # ------------------------------------------------------------------ events
    def emit(self, action: str, **data: Any) -> None:
        """One lifecycle event to every subscribed front end (never fails the request)."""
        try:
            self.serverapp.event_logger.emit(schema_id=SCHEMA_ID, data={"action": action, **data})
        except Exception:  # noqa: BLE001 - an event that cannot be sent is logged, the state stands
            log.exception("could not emit the labwork lifecycle event %s", action)

    def pushed(self, body: Any) -> dict[str, Any]:
        """A PUT from the control plane: merge, emit, answer."""
        changed = self.state.merge(body)
        answer = self.answer()
        if changed:
            self.emit("state", changed=changed, state=answer)
            log.info("labwork lifecycle: %s pushed", ", ".join(changed))
        return answer

    def set_deadline(self, deadline: str | None) -> dict[str, Any]:
        """After an Extend: the control plane's new deadline (it also pushes it; both are the same)."""
        self.state.merge({"deadline": deadline})
        answer = self.answer()
        self.emit("state", changed=["deadline"], state=answer)
        return answer

    # ------------------------------------------------------------------ the ends file
    def check_ends(self) -> None:
        """Emit the ends recorded since the last look (a stat() when nothing changed)."""
        if self.ends_file is None:
            return
        try:
            st = os.stat(self.ends_file)
        except OSError:
            return
        mark = (st.st_mtime, st.st_size)
        if mark == self._ends_mark:
            return
        first = self._ends_mark is None
        self._ends_mark = mark
        ends = read_ends(self.ends_file)
        new, self._ends_seen = ends[self._ends_seen:] if len(ends) >= self._ends_seen else ends, len(ends)
        if first:
            return  # ends from before this server started are answered, not announced
        for end in new[-MAX_KERNELS:]:
            self.emit("kernel_end", kernel_id=end.kernel_id, end=end.to_dict())

    def start(self) -> None:
        self.check_ends()
        self._watch = PeriodicCallback(self.check_ends, ENDS_POLL_MS)
        self._watch.start()

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()


def keep_token_out_of_pages(settings: dict[str, Any]) -> None:
    """JupyterLab and Notebook 7 write the server's token into every page's config; the browser
    never holds it (labwork's proxy adds it to each request it forwards, and a browser that logged
    in with `?token=` directly has Jupyter's cookie): blank it, after any hook already set."""
    earlier = settings.get("page_config_hook")

    def hook(handler: Any, page_config: dict[str, Any]) -> dict[str, Any]:
        if earlier is not None:
            page_config = earlier(handler, page_config)
        page_config["token"] = ""
        return page_config
    settings["page_config_hook"] = hook


def load(serverapp: Any) -> LabExtension:
    """Register the event schema and the handlers under `<base_url>labwork/`."""
    from labwork.lab.handlers import handlers

    serverapp.event_logger.register_event_schema(SCHEMA_PATH)
    keep_token_out_of_pages(serverapp.web_app.settings)
    ext = LabExtension(serverapp, ends_path())
    serverapp.web_app.add_handlers(".*$", handlers(serverapp.base_url, ext))
    ext.start()
    serverapp.log.info("labwork lab extension: lifecycle at %slabwork/lifecycle; kernel ends from %s",
                       serverapp.base_url, ext.ends_file or "(none)")
    return ext
