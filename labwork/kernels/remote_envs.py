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
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from labwork.errors import LabworkError
from labwork.kernels.environments import KERNEL_PACKAGES, _requirements_file
from labwork.kernels.prepared import Progress, input_key, marker_path, read_marker, target_as, write_marker
from labwork.kernels.ssh import Ssh, q
from labwork.project.files import Project
from labwork.project.models import RemoteTarget
from labwork.settings import Settings

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
        return read_marker(self.marker)

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
    return target_as(project, rc_name, RemoteTarget, "remote")


def remote_plan(project: Project, rc_name: str, settings: Settings) -> RemotePlan:
    target = remote_target(project, rc_name)
    req = _requirements_file(project, rc_name)
    key = input_key(target.python, json.dumps(KERNEL_PACKAGES), target.host, target.user or "", requirements=req)
    return RemotePlan(runconfig=rc_name, ssh=Ssh.for_target(target), python=target.python, key=key,
                      requirements=req, marker=marker_path(settings.home, "remote-envs", key),
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


def streamed(ssh: Ssh, command: str, progress: Progress, timeout: float = 1800) -> None:
    """Run `command` on the host, each line of its output (stdout and stderr) to `progress` as it
    comes, as a local build shows pip's lines; a failure says the command, its exit and last lines."""
    proc = subprocess.Popen(ssh.args(master=True) + [f"{command} 2>&1"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    tail: list[str] = []
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line:
                tail = (tail + [line])[-20:]
                progress(line)
        err = proc.stderr.read().decode(errors="replace")
        code = proc.wait()
    finally:
        killer.cancel()
    if code == 255:
        raise ssh.failure(err)
    if code != 0:
        raise LabworkError(f"'{command[:80]}' failed on {ssh.where} (exit {code})", where=ssh.where,
                           details={"output": "\n".join(tail)}, hint=tail[-1] if tail else None)


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
        pip = f"{q(tmp)}/bin/python -m pip install --disable-pip-version-check --progress-bar off"
        progress(f"[2/4] installing the kernel ({', '.join(KERNEL_PACKAGES)})")
        streamed(ssh, f"{pip} {' '.join(q(p) for p in KERNEL_PACKAGES)}", progress)
        if plan.requirements:
            progress(f"[3/4] installing {plan.requirements.relative_to(project.root)}")
            ssh.run(f"cat > {q(tmp)}/requirements.txt", input=plan.requirements.read_bytes())
            streamed(ssh, f"{pip} -r {q(tmp)}/requirements.txt", progress)
        progress("[4/4] copying labwork's kernel extension")
        ssh.run(f"mkdir -p {q(tmp)}/labwork-lib && tar -xzf - -C {q(tmp)}/labwork-lib", input=_labwork_tar())
        ssh.run(f"touch {q(tmp)}/.ready && rm -rf {q(venv)} && mv {q(tmp)} {q(venv)}")
        progress(f"environment ready in {time.monotonic() - started:.0f}s: {ssh.host}:{venv}")
    slug = hashlib.sha1(str(project.root).encode()).hexdigest()[:12]
    kernel_home = f"{home}/{REMOTE_DIR}/homes/{slug}-{rc_name.lower()}"  # token copy, spool: per project
    write_marker(plan.marker, venv=venv, home=kernel_home, host=ssh.host, runconfig=rc_name, project=str(project.root))
    if not plan.prepared:
        raise LabworkError("the environment was built but its record could not be written", where=str(plan.marker))
    return plan
