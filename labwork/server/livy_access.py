"""The `/livy` side of the project rule (`labwork.server.project_access` is the API's and pages'):
a Spark session tagged with a project (`spark.labwork.project`, the project's folder, which
labwork's Spark kernels set) is visible only to the project's members and administrators; for
anyone else it does not exist (404). Untagged sessions belong to no project and stay visible to
every authenticated caller until sessions carry their user (the "Spark as the user" step)."""
from __future__ import annotations

from typing import Any

from fastapi import Request

from labwork.auth.identity import identity_of
from labwork.auth.members import role_of
from labwork.errors import LabworkError
from labwork.gateway.visibility import Visible
from labwork.project.registry import get_project_row
from labwork.spark_properties import PROJECT_TAG
from labwork.store.db import Store


def visible_for(store: Store) -> Visible:
    def visible(request: Request, conf: dict[str, Any]) -> bool:
        user = identity_of(request).user
        if user is None:
            return False
        if user.admin:
            return True
        tag = str(conf.get(PROJECT_TAG) or "")
        if not tag:
            return True
        try:
            row = get_project_row(store, tag)
        except LabworkError:
            return False  # a project labwork does not know: nobody's but an admin's to see
        return role_of(store, user, row["id"]) is not None
    return visible
