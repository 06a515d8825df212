"""What the server manager needs from its collaborators, as small Protocols: the composition
(`labwork.server.services`) passes the real objects in, and nothing here imports them."""
from __future__ import annotations

from typing import Protocol


class ProjectSessions(Protocol):
    """Something that deletes a project's Spark sessions when its server stops: the control
    plane's gateway (`labwork.gateway.gateway.Gateway.delete_project_sessions_sync`)."""

    def delete_project_sessions_sync(self, project: str) -> int:
        """Delete every session tagged `spark.labwork.project = project`; returns how many."""
        ...
