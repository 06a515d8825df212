"""The state of docker and remote compute targets (daemon or host reachable, kernels running
there), cached for the Compute page as the environment checks are (envcache.py).

Asking a daemon or a host takes up to a few seconds, and one that is down takes its whole
timeout: the page must not wait for that on every render. Each target is probed in a background
thread; the page shows the last answer (or "checking…" before the first), and a probe older than
`settings.target_state_s` is made again in the background when the page is shown. "Check again" on
the page (`?refresh=1`) asks for a new probe at once; the page's script fetches
`compute/states.json` until no probe is running and puts the answers in place.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from labwork.project.models import DockerTarget, RemoteTarget

CHECKING = {"ok": None, "text": "checking…", "kernels": []}


@dataclass
class Probe:
    state: dict[str, Any] | None = None  # the last answer of labwork.kernels.target_state
    running: bool = False
    at: float | None = None  # when the last answer came


@dataclass
class TargetStates:
    _probes: dict[tuple[str, str, str], Probe] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def states(self, loaded: Any, max_age_s: float, *, force: bool = False) -> dict[str, dict[str, Any]]:
        """{target name: {"ok", "text", "kernels", "checking", "checked_at"}} for the project's
        docker and remote targets, as far as known; starts the probes that are due."""
        out: dict[str, dict[str, Any]] = {}
        now = time.time()
        for name, target in sorted(loaded.targets.items()):
            if not isinstance(target, (DockerTarget, RemoteTarget)):
                continue
            key = (str(loaded.root), name, json.dumps(target.model_dump(mode="json"), sort_keys=True))
            with self._lock:
                probe = self._probes.setdefault(key, Probe())
                due = not probe.running and (force or probe.at is None or now - probe.at > max_age_s)
                if due:
                    probe.running = True
            if due:
                threading.Thread(target=self._probe, args=(probe, str(loaded.root), target),
                                 name="dashboard-target-state", daemon=True).start()
            out[name] = {**(probe.state or CHECKING), "checking": probe.running, "checked_at": probe.at}
        return out

    @staticmethod
    def _probe(probe: Probe, root: str, target: Any) -> None:
        from labwork.kernels.target_state import target_state
        try:
            probe.state = target_state(root, target)
        except Exception as exc:  # noqa: BLE001 - a probe's bug is shown as its answer, never raised
            probe.state = {"ok": False, "text": f"{type(exc).__name__}: {exc}", "kernels": []}
        finally:
            probe.at = time.time()
            probe.running = False
