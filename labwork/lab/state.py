"""The lifecycle state one Jupyter server's labwork extension holds: what the control plane pushed
(deadline, warning offsets, idle, a notice, a stop under way), what the front ends said (their
acks of a stop: what they saved), and which front ends were seen lately.

Plain data and the standard library: the handlers (labwork/lab/handlers.py) read and change it on
the server's event loop, one request at a time, so no lock is needed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from labwork.errors import ConfigError

PUSHED = ("deadline", "warn_before_s", "idle", "notice", "stopping")
NOTICE_KINDS = ("deadline", "idle", "busy")
CLIENT_WINDOW_S = 30.0  # a front end polls at least every 10 s: one not seen for 30 s is gone
MAX_CLIENTS = 200  # a bound on the clients remembered (ids come from browsers)
MAX_ACKS = 200
MAX_PATHS = 1000
DEFAULT_WARN_BEFORE_S = (900.0, 120.0)


def parse_time(value: Any, key: str) -> datetime | None:
    """An ISO 8601 time (with its offset; naive means UTC) or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"'{key}' must be an ISO 8601 time or null, got {value!r}", where=f"lifecycle.{key}")
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"'{key}' is not an ISO 8601 time: {value!r}", where=f"lifecycle.{key}",
                          hint="e.g. 2026-12-02T10:00:00+00:00") from exc
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def _text(value: Any, key: str, limit: int = 500, section: str = "lifecycle") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"'{key}' must be a non-empty string", where=f"{section}.{key}")
    return value.strip()[:limit]


def _paths(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"'{key}' must be a list of paths", where=f"saved.{key}")
    return [p[:1000] for p in value[:MAX_PATHS]]


def _seconds(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"'{key}' must be a number of seconds ≥ 0 or null, got {value!r}",
                          where=f"lifecycle.{key}")
    return float(value)


@dataclass
class Lifecycle:
    deadline: datetime | None = None
    warn_before_s: list[float] = field(default_factory=lambda: list(DEFAULT_WARN_BEFORE_S))
    idle_timeout_s: float | None = None
    idle_stop_at: datetime | None = None
    notice: dict[str, Any] | None = None
    stopping: dict[str, Any] | None = None
    acks: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)  # client id -> monotonic time last seen

    # ------------------------------------------------------------------ pushed by the control plane
    def merge(self, body: Any) -> list[str]:
        """Apply a PUT's JSON object; the keys it changed. Checks every key before changing any."""
        if not isinstance(body, dict):
            raise ConfigError("the body must be a JSON object", where="lifecycle")
        unknown = sorted(set(body) - set(PUSHED))
        if unknown:
            raise ConfigError(f"unknown lifecycle key(s): {', '.join(unknown)}", where="lifecycle",
                              hint=f"known keys: {', '.join(PUSHED)}")
        updates: dict[str, Any] = {}
        if "deadline" in body:
            updates["deadline"] = parse_time(body["deadline"], "deadline")
        if "warn_before_s" in body:
            offsets = body["warn_before_s"]
            if not isinstance(offsets, list) or not offsets or len(offsets) > 10:
                raise ConfigError("'warn_before_s' must be a list of 1 to 10 numbers of seconds",
                                  where="lifecycle.warn_before_s")
            updates["warn_before_s"] = sorted((_seconds(v, "warn_before_s") or 0.0 for v in offsets),
                                              reverse=True)
        if "idle" in body:
            idle = body["idle"]
            if idle is None:
                updates["idle"] = (None, None)
            elif isinstance(idle, dict) and not set(idle) - {"timeout_s", "stop_at"}:
                updates["idle"] = (_seconds(idle.get("timeout_s"), "idle.timeout_s"),
                                   parse_time(idle.get("stop_at"), "idle.stop_at"))
            else:
                raise ConfigError("'idle' must be null or {\"timeout_s\": …, \"stop_at\": …}", where="lifecycle.idle")
        if "notice" in body:
            updates["notice"] = self._notice(body["notice"])
        if "stopping" in body:
            updates["stopping"] = self._stopping(body["stopping"])
        for key, value in updates.items():
            if key == "idle":
                self.idle_timeout_s, self.idle_stop_at = value
            else:
                setattr(self, key, value)
            if key == "stopping" and value is None:
                self.acks = []
        return sorted(updates)

    @staticmethod
    def _notice(value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict) or value.get("kind") not in NOTICE_KINDS:
            raise ConfigError(f"'notice' must be null or an object whose kind is one of {', '.join(NOTICE_KINDS)}",
                              where="lifecycle.notice")
        return {"kind": value["kind"], "text": _text(value.get("text"), "notice.text"),
                "stop_at": _iso(parse_time(value.get("stop_at"), "notice.stop_at"))}

    @staticmethod
    def _stopping(value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ConfigError("'stopping' must be null or {\"id\", \"reason\", \"save_by\"}", where="lifecycle.stopping")
        save_by = parse_time(value.get("save_by"), "stopping.save_by")
        if save_by is None:
            raise ConfigError("'stopping.save_by' is required", where="lifecycle.stopping")
        return {"id": _text(value.get("id"), "stopping.id", 100), "reason": _text(value.get("reason"), "stopping.reason"),
                "save_by": _iso(save_by)}

    # ------------------------------------------------------------------ from the front ends
    def saw(self, client: str | None) -> None:
        if not client:
            return
        client = client[:100]
        now = time.monotonic()
        self.seen[client] = now
        if len(self.seen) > MAX_CLIENTS:
            for old in sorted(self.seen, key=self.seen.get)[: len(self.seen) - MAX_CLIENTS]:
                del self.seen[old]

    def clients(self) -> int:
        cutoff = time.monotonic() - CLIENT_WINDOW_S
        return sum(1 for t in self.seen.values() if t >= cutoff)

    def ack(self, body: Any) -> dict[str, Any]:
        """A front end's report of a stop's saves (POST labwork/saved)."""
        if not isinstance(body, dict):
            raise ConfigError("the body must be a JSON object", where="saved")
        ack = {"client": _text(body.get("client"), "client", 100, "saved"),
               "id": _text(body.get("id"), "id", 100, "saved"),
               "saved": _paths(body.get("saved"), "saved"), "failed": _paths(body.get("failed"), "failed")}
        self.saw(ack["client"])
        self.acks = [a for a in self.acks if (a["client"], a["id"]) != (ack["client"], ack["id"])][-MAX_ACKS:]
        self.acks.append(ack)
        return ack

    # ------------------------------------------------------------------ the answer
    def to_dict(self, kernels: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        left = (self.deadline - now).total_seconds() if self.deadline else None
        return {"deadline": _iso(self.deadline), "time_left_s": None if left is None else max(0.0, left),
                "warn_before_s": list(self.warn_before_s),
                "idle": {"timeout_s": self.idle_timeout_s, "stop_at": _iso(self.idle_stop_at)},
                "notice": self.notice, "stopping": self.stopping, "acks": list(self.acks),
                "clients": self.clients(), "kernels": kernels}
