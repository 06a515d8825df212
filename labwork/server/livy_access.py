"""The `/livy` side of the project rule (`labwork.server.project_access` is the API's and pages'):
who owns a Spark session and who may see it, from the caller `AccessGuard` found.

* A session or batch belongs to the user who created it (its `owner`; its `proxyUser` is that
  user unless an administrator named another). Only administrators may name another proxyUser.
* A user sees and controls their own sessions; a project's owners every session tagged with the
  project (`spark.labwork.project`, the project's folder, which labwork's Spark kernels set);
  administrators all. For anyone else a session does not exist (404), an untagged one included.
* Creating a session tagged with a project needs membership of it (404 otherwise).

The rules themselves are `labwork.auth.members.sees_spark` / `may_tag_spark`, which the
dashboard's Spark pages apply too."""
from __future__ import annotations

from typing import Any

from fastapi import Request

from labwork.auth.identity import identity_of
from labwork.auth.members import may_tag_spark, sees_spark
from labwork.gateway.visibility import LivyAccess
from labwork.store.db import Store


class ProjectLivyAccess:
    """`LivyAccess` from the control plane's users and project roles."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def caller(self, request: Request) -> str | None:
        user = identity_of(request).user
        return user.name if user is not None else None

    def is_admin(self, request: Request) -> bool:
        user = identity_of(request).user
        return bool(user is not None and user.admin)

    def sees(self, request: Request, conf: dict[str, Any], owner: str | None,
             proxy_user: str | None) -> bool:
        return sees_spark(self.store, identity_of(request).user, conf, owner, proxy_user)

    def may_create(self, request: Request, conf: dict[str, Any]) -> bool:
        return may_tag_spark(self.store, identity_of(request).user, conf)


def access_for(store: Store) -> LivyAccess:
    return ProjectLivyAccess(store)
