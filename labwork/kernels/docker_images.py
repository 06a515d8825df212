"""Images of Docker run configurations (`labwork experiment prepare --runconfig <docker rc>`).

The image is the target's base image plus a virtual environment at /opt/labwork/venv with
ipykernel and the run configuration's requirements, and labwork's kernel-side package (the run
history extension and the launcher: standard library + IPython only) on PYTHONPATH. It is tagged
`labwork-kernel/<runconfig>:<hash of its inputs>` (base image name, Dockerfile, requirements,
labwork's sources, the CA bundle), so a prepared image is reused until one of them changes. The
host's CA bundle goes in because HTTPS egress may be re-signed by a local CA; pip needs it.
"""
from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labwork.errors import LabworkError, MissingExtra, NotFound, Unavailable
from labwork.kernels.environments import KERNEL_PACKAGES, _requirements_file
from labwork.kernels.prepared import Progress, input_key, marker_path, target_as, write_marker
from labwork.project.files import Project
from labwork.project.models import DockerTarget
from labwork.settings import Settings

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
VENV = "/opt/labwork/venv"
LIB = "/opt/labwork/lib"
PYTHON_IN_IMAGE = f"{VENV}/bin/python"
PYSPARK_PACKAGES = ["pyspark>=3.5,<4"]

DOCKERFILE = """\
FROM {base}
USER root
{ca}
RUN (command -v python3 >/dev/null || {{ echo "labwork: the base image {base} has no python3" >&2; exit 1; }}) \\
 && {java}python3 -m venv {venv} \\
 && {venv}/bin/pip install --no-cache-dir --disable-pip-version-check --progress-bar off {kernel}
COPY requirements.txt /opt/labwork/requirements.txt
RUN if grep -qv '^[[:space:]]*\\(#.*\\)\\?$' /opt/labwork/requirements.txt; then \\
      {venv}/bin/pip install --no-cache-dir --disable-pip-version-check --progress-bar off \\
        -r /opt/labwork/requirements.txt; fi
COPY labwork {lib}/labwork
ENV PYTHONPATH={lib} PATH={venv}/bin:$PATH PYTHONUNBUFFERED=1
LABEL labwork.inputs={key}
"""


@dataclass
class ImagePlan:
    """What `prepare` builds for a run configuration, and whether it is built."""

    runconfig: str
    base: str
    tag: str
    key: str
    dockerfile: str
    requirements: Path | None
    marker: Path  # LABWORK_HOME/images/<key>.json, written when the build finished

    @property
    def prepared(self) -> bool:
        return self.marker.is_file()


def docker_target(project: Project, rc_name: str) -> DockerTarget:
    return target_as(project, rc_name, DockerTarget, "docker")


def image_plan(project: Project, rc_name: str, settings: Settings) -> ImagePlan:
    """The image a Docker run configuration's kernel needs (pure: no daemon asked)."""
    target = docker_target(project, rc_name)
    rc = project.runconfig(rc_name)
    req = _requirements_file(project, rc_name)
    ca = CA_BUNDLE.is_file()
    kernel = " ".join(f"'{p}'" for p in KERNEL_PACKAGES + (PYSPARK_PACKAGES if rc.framework == "pyspark" else []))
    java = ("apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null "
            "&& rm -rf /var/lib/apt/lists/* && " if rc.framework == "pyspark" else "")
    ca_lines = ("COPY ca-certificates.crt /etc/labwork/ca-certificates.crt\n"
                "ENV PIP_CERT=/etc/labwork/ca-certificates.crt REQUESTS_CA_BUNDLE=/etc/labwork/ca-certificates.crt"
                if ca else "")
    template = DOCKERFILE.format(base=target.image, ca=ca_lines, java=java, venv=VENV, kernel=kernel,
                                 lib=LIB, key="{key}")
    key = input_key(rc_name.lower(), target.docker_host or "", target.image, template,
                    CA_BUNDLE.read_bytes() if ca else b"", requirements=req)
    return ImagePlan(runconfig=rc_name, base=target.image, tag=f"labwork-kernel/{rc_name.lower()}:{key}",
                     key=key, dockerfile=template.replace("{key}", key), requirements=req,
                     marker=marker_path(settings.home, "images", key))


def docker_client(docker_host: str | None, key_file: str | None = None, known_hosts: str | None = None,
                  timeout: float | None = None) -> Any:
    """A docker SDK client for the target's daemon, or a clear error when it does not answer
    (`timeout`: seconds for each call, the SDK's 60 by default)."""
    if docker_host and docker_host.startswith("ssh://"):  # over labwork's own SSH connection
        from labwork.kernels.remote_docker import ssh_docker_client
        client = ssh_docker_client(docker_host, key_file, known_hosts, **({"timeout": timeout} if timeout else {}))
        if timeout:
            client.api.timeout = timeout
        return client
    try:
        import docker
    except ImportError as exc:
        raise MissingExtra("remote", "a docker compute target") from exc
    where = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        bound = {"timeout": timeout} if timeout else {}
        client = (docker.DockerClient(base_url=docker_host, use_ssh_client=docker_host.startswith("ssh://"), **bound)
                  if docker_host else docker.from_env(**bound))
        client.ping()
    except Exception as exc:  # noqa: BLE001 - docker raises several kinds for "not there"
        raise Unavailable(f"the Docker daemon at {where} is not reachable: {_short(exc)}", where=where,
                          hint="start dockerd (or check docker_host in the compute target)") from exc
    return client


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


def _context(plan: ImagePlan) -> bytes:
    """The build context as a tar: Dockerfile, requirements, CA bundle, labwork's package."""
    import labwork
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add_bytes(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
        add_bytes("Dockerfile", plan.dockerfile.encode())
        add_bytes("requirements.txt", plan.requirements.read_bytes() if plan.requirements else b"")
        if CA_BUNDLE.is_file():
            add_bytes("ca-certificates.crt", CA_BUNDLE.read_bytes())
        root = Path(labwork.__file__).parent
        for f in sorted(root.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                add_bytes(f"labwork/{f.relative_to(root).as_posix()}", f.read_bytes())
    return buf.getvalue()


def _stream(lines: Iterator[dict[str, Any]], progress: Progress) -> list[str]:
    tail: list[str] = []
    for chunk in lines:
        if "error" in chunk:
            raise LabworkError(f"building the image failed: {chunk['error'].strip()}",
                               details={"output": "\n".join(tail[-20:])},
                               hint="fix the requirements file or the base image, then prepare again")
        text = chunk.get("stream") or chunk.get("status") or ""
        for line in text.splitlines():
            if line.strip():
                tail.append(line.rstrip())
                progress(line.rstrip())
    return tail


def prepare_image(project: Project, rc_name: str, settings: Settings,
                  progress: Progress = lambda _line: None) -> ImagePlan:
    """Build (or reuse) the run configuration's image on the target's daemon."""
    target = docker_target(project, rc_name)
    plan = image_plan(project, rc_name, settings)
    client = docker_client(target.docker_host, target.key_file, target.known_hosts)
    try:
        if _has_image(client, plan.tag):
            progress(f"image {plan.tag} is up to date; reusing it")
            _mark(plan, project)
            return plan
        if not _has_image(client, plan.base):
            progress(f"pulling the base image {plan.base}")
            try:
                client.images.pull(plan.base)
            except Exception as exc:  # noqa: BLE001 - no registry, no such image, no access
                raise NotFound(f"base image {plan.base} is not on the Docker daemon and cannot be pulled: "
                               f"{_short(exc)}", where=str(project.config_dir / "compute" / f"{project.runconfig(rc_name).target}.toml"),
                               hint="docker pull it (or docker load/import it), or set image in the compute target") from exc
        started = time.monotonic()
        progress(f"building {plan.tag} from {plan.base} (ipykernel, labwork's kernel extension"
                 f"{', ' + plan.requirements.name if plan.requirements else ''})")
        lines = client.api.build(fileobj=io.BytesIO(_context(plan)), custom_context=True, tag=plan.tag,
                                 network_mode="host", rm=True, forcerm=True, decode=True,
                                 labels={"labwork.runconfig": rc_name, "labwork.project": str(project.root)})
        _stream(lines, progress)
        if not _has_image(client, plan.tag):
            raise LabworkError(f"building {plan.tag} finished without an image")
        progress(f"image ready in {time.monotonic() - started:.0f}s: {plan.tag}")
    finally:
        client.close()
    _mark(plan, project)
    return plan


def _has_image(client: Any, ref: str) -> bool:
    import docker.errors
    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def _mark(plan: ImagePlan, project: Project) -> None:
    write_marker(plan.marker, tag=plan.tag, base=plan.base, project=str(project.root), runconfig=plan.runconfig)
