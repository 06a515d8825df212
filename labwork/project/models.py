"""Project files as pydantic models (DESIGN.md §2). Secrets are never stored: fields ending in
`_env` name an environment variable that holds them."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from labwork.units import parse_size

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_name(value: str, what: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be 1-64 letters, digits, '_', '-' or '.', "
                         "starting with a letter or digit")
    return value


class ProjectSection(Strict):
    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip() or len(v) > 100 or any(c in v for c in "/\\\n"):
            raise ValueError("project name must be 1-100 characters without '/', '\\' or newlines")
        return v


class DefaultsSection(Strict):
    runconfig: str = "local"


class ProjectFile(Strict):
    """labwork.toml"""

    project: ProjectSection
    defaults: DefaultsSection = Field(default_factory=DefaultsSection)


class LocalTarget(Strict):
    type: Literal["local"] = "local"
    description: str | None = None


MASTER_WITH_LIVY = (
    "master cannot be set with via = \"livy\": the Spark sessions run on the gateway's master, so "
    "this one would be ignored. Remove master (the gateway's master is [gateway] master in "
    "LABWORK_HOME/config.toml, or 'labwork gateway serve --master'), or use via = \"kernel\" to run "
    "the driver in the kernel on this master")


LEGACY_DEFAULT_MASTER = "local[*]"


class SparkTarget(Strict):
    type: Literal["spark"] = "spark"
    master: str | None = None  # unset: local[*] in the kernel; the gateway's master with via = "livy"
    via: Literal["kernel", "livy"] = "kernel"
    description: str | None = None

    @property
    def kernel_master(self) -> str:
        """The master a driver in the kernel uses."""
        return self.master or "local[*]"

    @model_validator(mode="after")
    def _master_with_livy(self) -> "SparkTarget":
        if self.via == "livy" and self.master is not None:
            if self.master == LEGACY_DEFAULT_MASTER:
                # Earlier versions wrote this default into every spark target, --via livy included:
                # such files keep loading (the value never applied) instead of breaking on upgrade.
                object.__setattr__(self, "master", None)
                return self
            raise ValueError(MASTER_WITH_LIVY)
        return self

    @field_validator("master")
    @classmethod
    def _master(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.match(r"^(local(\[(\*|\d+)(,\d+)?\])?|spark://.+|yarn|k8s://.+|mesos://.+)$", v):
            raise ValueError("master must be local, local[N], local[*], spark://HOST:PORT, yarn or k8s://URL")
        return v


class LivyTarget(Strict):
    type: Literal["livy"] = "livy"
    url: str
    auth: Literal["none", "basic", "kerberos"] = "none"
    username: str | None = None
    password_env: str | None = None
    description: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("url must start with http:// or https:// and name a host")
        return v.rstrip("/")


class SshLogin(Strict):
    """What a target reached over SSH needs: a remote target's host, or a docker target's daemon on
    `docker_host = ssh://user@host` (labwork.kernels.ssh)."""

    key_file: str | None = None  # the login's private key; default: ssh's own choice
    known_hosts: str | None = None  # default: ~/.ssh/known_hosts; an unknown host key is refused
    project_files: Literal["detect", "shared", "copy"] = Field(
        default="detect",
        description="how the host finds the project (for a docker target on ssh://, what its containers "
                    "mount at the project's path): 'shared' (the host sees it at the same path), 'copy' "
                    "(rsync'd to ~/.labwork-remote/projects/ at each kernel start, without outputs/ and what "
                    ".gitignore excludes), 'detect' (shared if the host has the same labwork.toml at the "
                    "same path, else a copy)")


class DockerTarget(SshLogin):
    """Kernels in containers built from `image` (`labwork experiment prepare` adds the kernel)."""

    type: Literal["docker"] = "docker"
    image: str = "python:3.11-slim"
    memory: str | None = None  # docker's --memory: 512m, 2g
    cpus: float | None = Field(default=None, gt=0, le=1024)
    docker_host: str | None = None  # DOCKER_HOST of the daemon: unix://..., tcp://..., ssh://user@vm
    user: str | None = None  # uid[:gid] in the container; default: the project folder's owner
    description: str | None = None

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._/:@-]{0,254}", v):
            raise ValueError("image must be a Docker image reference such as python:3.11-slim")
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None and (not re.fullmatch(r"[1-9][0-9]*[bkmg]?", v, re.IGNORECASE) or not parse_size(v)):
            # docker's --memory syntax: a whole number and one unit letter
            raise ValueError("memory must be a number with an optional unit b, k, m or g (512m, 2g)")
        return v.lower() if v else v

    @field_validator("docker_host")
    @classmethod
    def _docker_host(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(unix|tcp|ssh)://.+", v):
            raise ValueError("docker_host must start with unix://, tcp:// or ssh://")
        return v

    @field_validator("user")
    @classmethod
    def _user(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?", v):
            raise ValueError("user must be uid[:gid] or name[:group]")
        return v


class RemoteTarget(SshLogin):
    type: Literal["remote"] = "remote"
    host: str
    user: str | None = None
    port: int = Field(default=22, ge=1, le=65535)
    python: str = "python3"
    description: str | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,253}", v) or v.startswith("-"):
            raise ValueError("host must be a host name or an IP address")
        return v


ComputeTarget = Annotated[LocalTarget | SparkTarget | LivyTarget | DockerTarget | RemoteTarget,
                          Field(discriminator="type")]
TARGET_KINDS = ("local", "spark", "livy", "docker", "remote")


class EnvironmentSection(Strict):
    """`requirements` unset means the interpreter labwork runs in."""

    requirements: str | None = None
    python: str | None = None  # interpreter used to build the venv; default: the current one


MIN_KERNEL_MEMORY = 64 << 20  # a Python kernel needs about 60 MiB to start at all


def memory_bytes(value: str) -> int:
    """A kernel's memory limit in bytes (`labwork.units.parse_size`), at least MIN_KERNEL_MEMORY."""
    try:
        n = parse_size(value)
    except ValueError:
        raise ValueError("memory must be a size such as 256m, 4g or 1.5g (a number and one of k, m, g, t)") from None
    if n < MIN_KERNEL_MEMORY:
        raise ValueError("memory must be at least 64m (a kernel needs about 60 MiB to start)")
    return n


class ResourcesSection(Strict):
    """`[resources]` of a run configuration: what its kernels may use (docs/projects.md)."""

    memory: str | None = Field(default=None, description="memory limit of each kernel: 256m, 4g")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v: object) -> object:
        if v is None:
            return v
        if not isinstance(v, str):
            raise ValueError("memory must be a quoted size such as \"4g\"")
        memory_bytes(v)
        return v.strip().lower()

    @property
    def memory_bytes(self) -> int | None:
        return memory_bytes(self.memory) if self.memory else None


class RunConfig(Strict):
    target: str
    framework: Literal["python", "pyspark", "spark"] = "python"
    environment: EnvironmentSection = Field(default_factory=EnvironmentSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    env: dict[str, str] = Field(default_factory=dict)
    spark: dict[str, str] = Field(default_factory=dict)
    history: bool = False  # run history on by default in this run configuration's kernels
    description: str | None = None

    @field_validator("spark", mode="before")
    @classmethod
    def _stringify(cls, v: object) -> object:
        if isinstance(v, dict):
            return {str(k): str(val).lower() if isinstance(val, bool) else str(val) for k, val in v.items()}
        return v
