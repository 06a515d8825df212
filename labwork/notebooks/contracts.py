"""What the notebooks part needs from other parts, as small Protocols (given, never looked up)."""
from __future__ import annotations

from typing import Protocol


class ProjectSessions(Protocol):
    """Deletes the Spark sessions a project's kernels made (the gateway does), only `user`'s when
    given (one user's server stopped: the other members' sessions stay); the number deleted."""

    def delete_project_sessions_sync(self, project: str, timeout: float = 60.0,
                                     user: str | None = None) -> int: ...
