"""Docker kernels' containers left behind by what started them, found by their labels and removed.

Two owners leave them: a job runner killed before its cleanup (labwork/jobs/containers.py, by the
`labwork.kernel=<id>` label) and a Jupyter server that died hard (its docker kernels carry
`labwork.server=<LABWORK_SERVER_ID>` and `labwork.project=<path>`; the server manager removes them
when it marks the server dead). Every call to a daemon is bounded (`TIMEOUT_S`); a daemon that is
down or refuses is a line in the owner's log, never an error.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("labwork.kernels")

TIMEOUT_S = 10.0
KERNEL_LABEL = "labwork.kernel"  # the kernel's id
SERVER_LABEL = "labwork.server"  # the Jupyter server's id (LABWORK_SERVER_ID); absent for job runners
PROJECT_LABEL = "labwork.project"  # the project folder's path


class Daemon(NamedTuple):
    """A Docker daemon to ask: its docker_host (None: the default one) and, for ssh://, the login's files."""

    host: str | None
    key_file: str | None = None
    known_hosts: str | None = None


def project_daemons(project_path: str | Path) -> list[Daemon]:
    """The daemons of the project's docker targets (none when the project cannot be read)."""
    from labwork.project.files import load_project
    from labwork.project.models import DockerTarget
    try:
        targets = load_project(Path(project_path)).targets.values()
    except Exception:  # noqa: BLE001 - the project moved or broke: no target is known
        return []
    out = [Daemon(t.docker_host, t.key_file, t.known_hosts) for t in targets if isinstance(t, DockerTarget)]
    return list(dict.fromkeys(out))


def remove_labelled(daemons: Iterable[Daemon], labels: dict[str, str], note: Callable[[str], None],
                    left_by: str, *, timeout: float = TIMEOUT_S) -> list[str]:
    """Remove every container carrying all of `labels` on each daemon; the ids removed (short).

    `left_by` ends each removal's line ("the runner left"); `note` writes a line to the owner's log."""
    try:
        import docker  # noqa: F401 - the optional part: without it no docker kernel ran
    except ImportError:
        return []
    from labwork.kernels.docker_images import _short, docker_client
    wanted = [f"{k}={v}" for k, v in labels.items()]
    removed: list[str] = []
    for daemon in daemons:
        where = daemon.host or "the default daemon"
        try:
            client = docker_client(daemon.host, daemon.key_file, daemon.known_hosts, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - that daemon is down: nothing this side can remove there
            note(f"could not look for the kernels' containers on {where}: {_short(exc)}")
            continue
        try:
            for c in client.containers.list(all=True, filters={"label": wanted}):
                try:
                    c.remove(force=True)
                except Exception as exc:  # noqa: BLE001 - the daemon's words go to the owner's log
                    note(f"could not remove the kernel's container {c.short_id}: {_short(exc)}")
                    continue
                removed.append(c.short_id)
                note(f"removed the kernel's container {c.short_id} {left_by}")
                log.info("removed the kernel's container %s (%s) %s", c.short_id, ", ".join(wanted), left_by)
        except Exception as exc:  # noqa: BLE001 - listing failed: said, never raised into the plane
            note(f"could not look for the kernels' containers on {where}: {_short(exc)}")
        finally:
            client.close()
    return removed
