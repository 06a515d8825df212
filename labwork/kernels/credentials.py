"""The credential a kernel in a container or on another host sends to the control plane.

A kernel's run history, uploads and (for Spark kernels) /livy calls carry its user's personal
token: the Jupyter server of a user and project has it as `LABWORK_TOKEN`, and its local kernels
inherit it. A kernel in a container or on an SSH host gets that token (never the control plane's
own, which is an administrator's, unless the server is labwork's own and has no user) in a file
of its own, 0600, named by `LABWORK_TOKEN_FILE`: never on a command line (a remote `ps` would show
it) nor in a container's environment (`docker inspect` would). A container sees only its own
token file, mounted read-only at `CONTAINER_TOKEN`, not the other kernels' of a shared home.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from labwork import envvars

CONTAINER_TOKEN = "/run/labwork/token"


def kernel_token(launch_env: Mapping[str, str], control_home: str | os.PathLike[str] | None) -> str:
    """The kernel's user's token from its launch environment; else the control plane's (a server
    without a user); '' when there is neither (run history then spools)."""
    personal = {envvars.TOKEN: envvars.get(envvars.TOKEN, launch_env) or ""}
    if not control_home:
        return personal[envvars.TOKEN]
    return envvars.kernel_credential(Path(control_home), personal) or ""


def write_token_file(path: Path, token: str, ids: tuple[int, int] | None = None) -> Path:
    """The kernel's token file (0600, in a 0700 folder), owned by the container's user when given."""
    from labwork.private import write_private
    write_private(path, token)
    if ids:
        os.chown(path.parent, *ids)
        os.chown(path, *ids)
    return path
