"""The `/livy` side of the project rule (`labwork.server.project_access` is the API's and pages'):
a Spark session tagged with a project (`spark.labwork.project`, the project's folder, which
labwork's Spark kernels set) is visible only to the project's members and administrators; for
anyone else it does not exist (404). The rule itself is `labwork.auth.members.sees_spark`, which
the dashboard's Spark pages apply too."""
from __future__ import annotations

from typing import Any

from fastapi import Request

from labwork.auth.identity import identity_of
from labwork.auth.members import sees_spark
from labwork.gateway.visibility import Visible
from labwork.store.db import Store


def visible_for(store: Store) -> Visible:
    def visible(request: Request, conf: dict[str, Any]) -> bool:
        return sees_spark(store, identity_of(request).user, conf)
    return visible
