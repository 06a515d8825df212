"""`labwork experiment prepare`: what a run configuration's kernel needs, by its target's kind.

Local run configurations get a virtual environment here (labwork.kernels.environments), docker
ones an image on the target's daemon (docker_images), remote ones a virtual environment on the
host over SSH (remote_envs). Each is keyed by a hash of its inputs and reused until they change.
"""
from __future__ import annotations

from labwork.kernels.prepared import Progress
from labwork.project.files import Project
from labwork.settings import Settings



def prepare_runconfig(project: Project, rc_name: str, settings: Settings,
                      progress: Progress = lambda _line: None) -> str:
    """Build (or reuse) the run configuration's environment; returns where it is, in words."""
    kind = project.target_of(project.runconfig(rc_name)).type
    if kind == "docker":
        from labwork.kernels.docker_images import prepare_image
        return f"image {prepare_image(project, rc_name, settings, progress).tag}"
    if kind == "remote":
        from labwork.kernels.remote_envs import prepare_remote
        plan = prepare_remote(project, rc_name, settings, progress)
        return f"{plan.ssh.host}:{plan.venv}"
    from labwork.kernels.environments import prepare_environment
    return prepare_environment(project, rc_name, settings, progress).python
