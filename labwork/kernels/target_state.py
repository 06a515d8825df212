"""The state of docker and remote compute targets, for the dashboard's Compute page.

Quick probes with short timeouts (the page must not hang on a host that is down): the Docker
daemon's ping and the containers of this project's kernels; a TCP connect to the SSH port.
"""
from __future__ import annotations

import socket
from typing import Any

from labwork.errors import LabworkError
from labwork.project.models import DockerTarget, RemoteTarget


def target_state(project_root: str, target: Any) -> dict[str, Any] | None:
    """{"ok": bool, "text": what to show, "kernels": [{"container": id, "runconfig": ...}]}."""
    if isinstance(target, DockerTarget):
        return _docker_state(project_root, target)
    if isinstance(target, RemoteTarget):
        return _remote_state(target)
    return None


def _docker_state(project_root: str, target: DockerTarget) -> dict[str, Any]:
    try:
        import docker
        if target.docker_host and target.docker_host.startswith("ssh://"):
            from labwork.kernels.remote_docker import ssh_docker_client
            client = ssh_docker_client(target.docker_host, target.key_file, target.known_hosts, timeout=15)
        else:
            client = (docker.DockerClient(base_url=target.docker_host, timeout=3)
                      if target.docker_host else docker.from_env(timeout=3))
        try:
            client.ping()
            found = client.containers.list(filters={"label": ["labwork.kernel", f"labwork.project={project_root}"]})
            kernels = [{"container": c.short_id, "runconfig": c.labels.get("labwork.runconfig", ""),
                        "kernel": c.labels.get("labwork.kernel", "")} for c in found]
        finally:
            client.close()
    except ImportError:
        return {"ok": False, "text": "the Docker SDK is not installed (labwork[remote])", "kernels": []}
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable", said in words
        from labwork.kernels.docker_images import _short
        return {"ok": False, "text": f"daemon not reachable: {_short(exc)}", "kernels": []}
    return {"ok": True, "text": f"daemon reachable; {len(kernels)} kernel(s) running", "kernels": kernels}


def _remote_state(target: RemoteTarget) -> dict[str, Any]:
    try:
        with socket.create_connection((target.host, target.port), timeout=2):
            pass
    except OSError as exc:
        return {"ok": False, "text": f"host not reachable on port {target.port}: {exc.strerror or exc}", "kernels": []}
    except LabworkError as exc:  # pragma: no cover - defensive
        return {"ok": False, "text": exc.message, "kernels": []}
    return {"ok": True, "text": f"SSH port {target.port} answers", "kernels": []}
