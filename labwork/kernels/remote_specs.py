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

from labwork.kernels.provisioned_ends import memory_bytes
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


def _spec(project: Project, rc_name: str, display: str, env: dict[str, str], *, kind: str, what: str,
          prepared: bool, python: str, provisioner: str, config: dict[str, Any],
          **labels: Any) -> dict[str, Any]:
    """kernel.json of a run configuration whose kernel starts through `provisioner` (the unprepared
    kernel when its environment is not built)."""
    rc = project.runconfig(rc_name)
    metadata: dict[str, Any] = {"labwork": {"project": str(project.root), "runconfig": rc_name,
                                            "framework": rc.framework, "target": rc.target, "kind": kind,
                                            **labels, "prepared": True}}
    if not prepared:
        return _unprepared(display, env, what, rc_name, project, metadata)
    metadata["kernel_provisioner"] = {"provisioner_name": provisioner, "config": {
        **config, "project": str(project.root), "runconfig": rc_name}}
    return {"argv": [python, "-m", "labwork.kernels.launch", "-f", "{connection_file}"],
            "display_name": display, "language": "python", "interrupt_mode": "signal", "env": env,
            "metadata": metadata}


def docker_kernel_spec(project: Project, rc_name: str, settings: Settings, display: str,
                       env: dict[str, str]) -> dict[str, Any]:
    """kernel.json of a docker run configuration (labwork.kernels.docker_provisioner)."""
    from labwork.kernels.docker_images import PYTHON_IN_IMAGE, image_plan
    target = project.target_of(project.runconfig(rc_name))
    assert isinstance(target, DockerTarget)
    plan = image_plan(project, rc_name, settings)
    rc = project.runconfig(rc_name)
    return _spec(project, rc_name, display, env, kind="docker", what="image", prepared=plan.prepared,
                 python=PYTHON_IN_IMAGE, provisioner="labwork-docker", image=plan.tag, config={
                     "image": plan.tag, "docker_host": target.docker_host,
                     "memory": rc.resources.memory_bytes or target.memory,
                     "memory_limit": docker_memory(rc, target), "cpus": target.cpus, "user": target.user,
                     "home": kernel_home(project, rc_name, settings), "control_home": str(settings.home),
                     "key_file": target.key_file, "known_hosts": target.known_hosts,
                     "project_files": target.project_files})


def docker_memory(rc: Any, target: DockerTarget) -> int | None:
    """The container's memory limit in bytes: the run configuration's `[resources] memory`, else
    the target's `memory` (docker's --memory)."""
    if rc.resources.memory_bytes:
        return rc.resources.memory_bytes
    return memory_bytes(target.memory)


def remote_kernel_spec(project: Project, rc_name: str, settings: Settings, display: str,
                       env: dict[str, str]) -> dict[str, Any]:
    """kernel.json of a remote (SSH) run configuration (labwork.kernels.ssh_provisioner)."""
    from labwork.kernels.remote_envs import remote_plan
    target = project.target_of(project.runconfig(rc_name))
    assert isinstance(target, RemoteTarget)
    plan = remote_plan(project, rc_name, settings)
    return _spec(project, rc_name, display, env, kind="remote", what="environment on the host",
                 prepared=plan.prepared, python=f"{plan.venv}/bin/python", provisioner="labwork-ssh",
                 host=target.host, config={
                     **plan.connection(), "venv": plan.venv, "home": plan.remote_home,
                     "control_home": str(settings.home), "project_files": target.project_files})
