"""Kernel specs of docker and remote run configurations: a provisioner named in the metadata.

The spec is made without asking the daemon or the host (the kernel list is read on every request):
whether the image or environment is prepared comes from the marker `prepare` writes. An
unprepared one gets the local kernel that answers every cell with the command to run, as local
run configurations do.
"""
from __future__ import annotations

import hashlib
import sys
from typing import Any

from labwork.project.files import Project
from labwork.project.models import DockerTarget, RemoteTarget
from labwork.settings import Settings

KERNEL_HOMES = "kernel-homes"


def kernel_home(project: Project, rc_name: str, settings: Settings) -> str:
    """LABWORK_HOME of the run configuration's containers/remote kernels (token copy, spool)."""
    slug = hashlib.sha1(str(project.root).encode()).hexdigest()[:12]
    return str(settings.home / KERNEL_HOMES / f"{slug}-{rc_name.lower()}")


def _unprepared(display: str, env: dict[str, str], what: str, rc_name: str, project: Project,
                metadata: dict[str, Any]) -> dict[str, Any]:
    env = dict(env)
    env["LABWORK_UNPREPARED"] = (f"The {what} of run configuration '{rc_name}' is not prepared. "
                                 f"Run: labwork experiment prepare --runconfig {rc_name}  (in {project.root})")
    metadata["labwork"]["prepared"] = False
    return {"argv": [sys.executable, "-m", "labwork.kernels.launch", "-f", "{connection_file}"],
            "display_name": f"{display} (not prepared)", "language": "python", "interrupt_mode": "signal",
            "env": env, "metadata": metadata}


def docker_kernel_spec(project: Project, rc_name: str, settings: Settings, display: str,
                       env: dict[str, str]) -> dict[str, Any]:
    """kernel.json of a docker run configuration (labwork.kernels.docker_provisioner)."""
    from labwork.kernels.docker_images import PYTHON_IN_IMAGE, image_plan
    rc = project.runconfig(rc_name)
    target = project.target_of(rc)
    assert isinstance(target, DockerTarget)
    plan = image_plan(project, rc_name, settings)
    metadata: dict[str, Any] = {"labwork": {"project": str(project.root), "runconfig": rc_name,
                                            "framework": rc.framework, "target": rc.target, "kind": "docker",
                                            "image": plan.tag, "prepared": True}}
    if not plan.prepared:
        return _unprepared(display, env, "image", rc_name, project, metadata)
    metadata["kernel_provisioner"] = {"provisioner_name": "labwork-docker", "config": {
        "image": plan.tag, "docker_host": target.docker_host,
        "memory": rc.resources.memory_bytes or target.memory, "memory_limit": docker_memory(rc, target),
        "cpus": target.cpus,
        "user": target.user, "project": str(project.root), "runconfig": rc_name,
        "home": kernel_home(project, rc_name, settings), "control_home": str(settings.home)}}
    return {"argv": [PYTHON_IN_IMAGE, "-m", "labwork.kernels.launch", "-f", "{connection_file}"],
            "display_name": display, "language": "python", "interrupt_mode": "signal", "env": env,
            "metadata": metadata}


def docker_memory(rc: Any, target: DockerTarget) -> int | None:
    """The container's memory limit in bytes: the run configuration's `[resources] memory`, else
    the target's `memory` (docker's --memory)."""
    if rc.resources.memory_bytes:
        return rc.resources.memory_bytes
    if not target.memory:
        return None
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = target.memory.lower()
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def remote_kernel_spec(project: Project, rc_name: str, settings: Settings, display: str,
                       env: dict[str, str]) -> dict[str, Any]:
    """kernel.json of a remote (SSH) run configuration (labwork.kernels.ssh_provisioner)."""
    from labwork.kernels.remote_envs import remote_plan
    rc = project.runconfig(rc_name)
    target = project.target_of(rc)
    assert isinstance(target, RemoteTarget)
    plan = remote_plan(project, rc_name, settings)
    metadata: dict[str, Any] = {"labwork": {"project": str(project.root), "runconfig": rc_name,
                                            "framework": rc.framework, "target": rc.target, "kind": "remote",
                                            "host": target.host, "prepared": True}}
    if not plan.prepared:
        return _unprepared(display, env, "environment on the host", rc_name, project, metadata)
    metadata["kernel_provisioner"] = {"provisioner_name": "labwork-ssh", "config": {
        **plan.connection(), "venv": plan.venv, "project": str(project.root), "runconfig": rc_name,
        "home": plan.remote_home, "control_home": str(settings.home), "project_files": target.project_files}}
    return {"argv": [f"{plan.venv}/bin/python", "-m", "labwork.kernels.launch", "-f", "{connection_file}"],
            "display_name": display, "language": "python", "interrupt_mode": "signal", "env": env,
            "metadata": metadata}
