"""Virtual environments of remote run configurations, built on the host over SSH.

`labwork experiment prepare --runconfig <remote rc>` makes `~/.labwork-remote/envs/<hash>` on the
host with the target's interpreter: ipykernel, the run configuration's requirements, and labwork's
kernel-side package (copied as a tar over the same connection, on PYTHONPATH). The hash covers
the requirements, the interpreter, the kernel packages and labwork's sources, so it is reused
until one changes. A marker under LABWORK_HOME/remote-envs records the host's absolute paths.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labwork.errors import ConfigError, LabworkError
from labwork.kernels.docker_images import _source_digest
from labwork.kernels.environments import KERNEL_PACKAGES, _requirements_file
from labwork.kernels.ssh import Ssh, q
from labwork.private import write_private
from labwork.project.files import Project
from labwork.project.models import RemoteTarget
from labwork.settings import Settings

Progress = Callable[[str], None]
REMOTE_DIR = ".labwork-remote"


@dataclass
class RemotePlan:
    runconfig: str
    ssh: Ssh
    python: str
    key: str
    requirements: Path | None
    marker: Path
    project_slug: str = ""

    def _info(self) -> dict:
        try:
            return json.loads(self.marker.read_text())
        except (OSError, ValueError):
            return {}

    @property
    def prepared(self) -> bool:
        return bool(self._info().get("venv"))

    @property
    def venv(self) -> str:
        return self._info().get("venv", "")

    @property
    def remote_home(self) -> str:
        """The kernels' LABWORK_HOME on the host, per project and run configuration (the marker is
        shared by every run configuration with the same environment, so it is not read from there)."""
        venv = self.venv
        if not venv or not self.project_slug:
            return self._info().get("home", "")
        return f"{venv.rsplit('/envs/', 1)[0]}/homes/{self.project_slug}-{self.runconfig.lower()}"

    def connection(self) -> dict:
        return self.ssh.connection()


def remote_target(project: Project, rc_name: str) -> RemoteTarget:
    target = project.target_of(project.runconfig(rc_name))
    if not isinstance(target, RemoteTarget):
        raise ConfigError(f"run configuration '{rc_name}' does not run on a remote target",
                          where=str(project.config_dir / "runconfig" / f"{rc_name}.toml"))
    return target


def remote_plan(project: Project, rc_name: str, settings: Settings) -> RemotePlan:
    target = remote_target(project, rc_name)
    req = _requirements_file(project, rc_name)
    h = hashlib.sha256()
    for part in (target.python, json.dumps(KERNEL_PACKAGES), _source_digest(), target.host,
                 target.user or ""):
        h.update(part.encode() + b"\0")
    h.update(req.read_bytes() if req else b"")
    key = h.hexdigest()[:16]
    return RemotePlan(runconfig=rc_name, ssh=Ssh.for_target(target), python=target.python, key=key,
                      requirements=req, marker=settings.home / "remote-envs" / f"{key}.json",
                      project_slug=hashlib.sha1(str(project.root).encode()).hexdigest()[:12])


def _labwork_tar() -> bytes:
    import labwork
    root = Path(labwork.__file__).parent
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted(root.rglob("*.py")):
            if "__pycache__" not in f.parts:
                tar.add(f, arcname=f"labwork/{f.relative_to(root).as_posix()}")
    return buf.getvalue()


def prepare_remote(project: Project, rc_name: str, settings: Settings,
                   progress: Progress = lambda _line: None) -> RemotePlan:
    """Build (or reuse) the run configuration's environment on its host."""
    plan = remote_plan(project, rc_name, settings)
    ssh = plan.ssh
    progress(f"connecting to {ssh.where}")
    home = ssh.run("printf %s \"$HOME\"", timeout=60).stdout.decode().strip()
    venv = f"{home}/{REMOTE_DIR}/envs/{plan.key}"
    if ssh.run(f"test -f {q(venv)}/.ready", check=False).returncode == 0:
        progress(f"environment on {ssh.host} is up to date ({venv}); reusing it")
    else:
        started = time.monotonic()
        tmp = venv + ".building"
        progress(f"[1/4] creating a virtual environment on {ssh.host} with {plan.python}")
        ssh.run(f"rm -rf {q(tmp)} && mkdir -p {q(tmp)} && {q(plan.python)} -m venv {q(tmp)}")
        pip = f"{q(tmp)}/bin/python -m pip install --disable-pip-version-check --progress-bar off -q"
        progress(f"[2/4] installing the kernel ({', '.join(KERNEL_PACKAGES)})")
        ssh.run(f"{pip} {' '.join(q(p) for p in KERNEL_PACKAGES)}")
        if plan.requirements:
            progress(f"[3/4] installing {plan.requirements.relative_to(project.root)}")
            ssh.run(f"cat > {q(tmp)}/requirements.txt && {pip} -r {q(tmp)}/requirements.txt",
                    input=plan.requirements.read_bytes())
        progress("[4/4] copying labwork's kernel extension")
        ssh.run(f"mkdir -p {q(tmp)}/labwork-lib && tar -xzf - -C {q(tmp)}/labwork-lib", input=_labwork_tar())
        ssh.run(f"touch {q(tmp)}/.ready && rm -rf {q(venv)} && mv {q(tmp)} {q(venv)}")
        progress(f"environment ready in {time.monotonic() - started:.0f}s: {ssh.host}:{venv}")
    slug = hashlib.sha1(str(project.root).encode()).hexdigest()[:12]
    kernel_home = f"{home}/{REMOTE_DIR}/homes/{slug}-{rc_name.lower()}"  # token copy, spool: per project
    write_private(plan.marker, json.dumps({"venv": venv, "home": kernel_home,
                                           "host": ssh.host, "runconfig": rc_name, "project": str(project.root),
                                           "built": time.time()}))
    if not plan.prepared:
        raise LabworkError("the environment was built but its record could not be written", where=str(plan.marker))
    return plan
