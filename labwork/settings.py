"""One settings model: defaults, then `LABWORK_HOME/config.toml`, then `LABWORK_*` environment
variables, then command-line flags. Unknown keys are errors at start-up, with their source."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from labwork.errors import ConfigError

ENV_PREFIX = "LABWORK_"


def default_home() -> Path:
    return Path(os.environ.get("LABWORK_HOME") or Path.home() / ".labwork").expanduser()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class GatewaySettings(Strict):
    """The Livy-compatible Spark gateway (see labwork.gateway)."""

    master: str = "local[*]"
    host: str = "127.0.0.1"
    port: int = 8998
    driver_memory: str = "1g"
    driver_cores: int = 1
    executor_memory: str = "1g"
    executor_cores: int = 1
    allowed_local_paths: list[str] = Field(default_factory=list)
    max_sessions: int = 16
    idle_timeout: str = "1h"
    retain_finished: str = "10m"
    csrf_protection: bool = False
    auth_user: str | None = None
    auth_password_env: str | None = None  # name of the env var that holds the password
    warm_pool: int = 0
    max_output_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024,
        description="Largest statement output the gateway returns (bytes of its JSON; Livy's "
                    "rpc.max.size, 50 MiB). A larger output ends the statement with an error "
                    "saying its size and this limit.")


class HistorySettings(Strict):
    """Run history: upload limits and delivery."""

    max_upload_mb: float = 100.0
    flush_interval_s: float = 0.2


class Settings(Strict):
    home: Path = Field(default_factory=default_home)
    host: str = "127.0.0.1"
    port: int = 8790
    db: str | None = None  # SQLAlchemy URL; default sqlite under home
    default_hours: float = 6.0
    extend_hours: float = 6.0
    logs_kept_per_project: int = 10
    deadline_check_s: float = 2.0
    jupyter_start_timeout_s: float = 120.0
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    history: HistorySettings = Field(default_factory=HistorySettings)

    # Derived locations -------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.home / 'labwork.db'}"

    @property
    def token_file(self) -> Path:
        return self.home / "token"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def envs_dir(self) -> Path:
        return self.home / "envs"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def control_file(self) -> Path:
        """Where a running control plane writes its URL and pid, for the CLI to find it."""
        return self.home / "control.json"


_SECTIONS = {"gateway", "history"}


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """LABWORK_PORT=1 -> {"port": "1"}; LABWORK_GATEWAY__MASTER=x -> {"gateway": {"master": x}}."""
    out: dict[str, Any] = {}
    known = set(Settings.model_fields)
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = key[len(ENV_PREFIX):].lower().split("__")
        if path[0] not in known:
            continue  # other LABWORK_* variables (LABWORK_URL, kernel context) are not settings
        if len(path) == 1 and path[0] in _SECTIONS:
            continue  # LABWORK_HISTORY=1 is the kernel's history default, not the [history] section
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _describe(exc: ValidationError, source: str) -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        msg = f"unknown setting '{key}'"
    else:
        msg = f"setting '{key}': {first['msg']} (got {first.get('input')!r})"
    return ConfigError(msg, where=source, details={"key": key, "errors": len(exc.errors())})


def load_settings(flags: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build settings from every source, reporting the first bad key with where it came from."""
    environ = dict(os.environ if environ is None else environ)
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    home = Path(flags.get("home") or environ.get("LABWORK_HOME") or default_home()).expanduser()
    layers: list[tuple[str, dict[str, Any]]] = []
    cfg = home / "config.toml"
    if cfg.exists():
        try:
            layers.append((str(cfg), tomllib.loads(cfg.read_text())))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", where=str(cfg)) from exc
    layers.append(("environment (LABWORK_*)", _env_overrides(environ)))
    layers.append(("command-line flags", flags))
    data: dict[str, Any] = {"home": home}
    for source, layer in layers:
        data = _merge(data, layer)
        try:
            Settings.model_validate(data)
        except ValidationError as exc:
            raise _describe(exc, source) from exc
    return Settings.model_validate(data)
