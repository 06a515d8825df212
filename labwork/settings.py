"""One settings model: defaults, then `LABWORK_HOME/config.toml`, then `LABWORK_*` environment
variables, then command-line flags. Unknown keys are errors at start-up, with their source."""
from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from labwork import envvars, units
from labwork.errors import ConfigError

ENV_PREFIX = "LABWORK_"


def default_home() -> Path:
    return envvars.home()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_BARE_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")


def _host(value: str) -> str:
    """An IP address or a hostname; '999.1.1.1' is neither (an all-digit name is a bad address)."""
    text = value.strip()
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if (text and len(text) <= 253 and all(_HOSTNAME_LABEL.match(lab) for lab in labels)
            and not labels[-1].isdigit()):
        return text
    raise ValueError(f"expected an IP address or a host name, got {value!r}")


def _duration(value: Any) -> str:
    """A duration string with its unit: in settings a bare number (Livy reads milliseconds) would
    surprise more than it helps."""
    if not isinstance(value, str) or not value.strip() or _BARE_NUMBER.match(value):
        raise ValueError(f"expected {units.DURATION_EXPECTED} (a string with a unit), got {value!r}")
    units.parse_duration(value)
    return value.strip()


def _size(value: Any) -> str:
    return units.check_size(value) or ""


def _db_url(value: str) -> str:
    """An SQLAlchemy URL whose dialect SQLAlchemy knows (its driver may still be missing)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("expected an SQLAlchemy URL like 'sqlite:///path/labwork.db' or "
                         "'postgresql+psycopg://user@host/db'") from None
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown database dialect '{url.drivername}'; expected sqlite:// or "
                         "postgresql+psycopg://") from None
    return value


Host = Annotated[str, AfterValidator(_host)]
Port = Annotated[int, Field(ge=0, le=65535)]
Duration = Annotated[str, BeforeValidator(_duration)]
Size = Annotated[str, BeforeValidator(_size)]
DbUrl = Annotated[str, AfterValidator(_db_url)]


class GatewaySettings(Strict):
    """The Livy-compatible Spark gateway (see labwork.gateway)."""

    master: str = Field("local[*]", description="Spark master for sessions: local[*], spark://…, yarn, k8s://…")
    host: Host = Field("127.0.0.1", description="address the standalone gateway binds")
    port: Port = Field(8998, description="port of the standalone gateway (1-65535; 0 = any free)")
    driver_memory: Size = Field("1g", description="default driver memory of a session, e.g. '2g'")
    driver_cores: int = Field(1, ge=1, description="default driver cores of a session")
    executor_memory: Size = Field("1g", description="default executor memory, e.g. '4g'")
    executor_cores: int = Field(1, ge=1, description="default executor cores")
    allowed_local_paths: list[str] = Field(default_factory=list,
                                           description="local folders sessions may read files and jars from")
    max_sessions: int = Field(16, ge=1, description="most sessions alive at once")
    idle_timeout: Duration = Field("1h", description="an idle session is deleted after this long, e.g. '30m'")
    retain_finished: Duration = Field("10m", description="how long a finished session stays listed, e.g. '10m'")
    csrf_protection: bool = Field(False, description="require Livy's X-Requested-By header on changes")
    auth_user: str | None = Field(None, description="user name for HTTP basic auth (standalone gateway)")
    auth_password_env: str | None = Field(None, description="name of the environment variable that holds "
                                                            "the basic-auth password")
    warm_pool: int = Field(0, ge=0, description="drivers kept started ahead of requests")
    max_output_bytes: int = Field(
        50 * 1024 * 1024, ge=1024,
        description="largest statement output returned, in bytes of its JSON (Livy's rpc.max.size, "
                    "50 MiB); a larger one ends the statement with an error saying its size and "
                    "this limit")
    arrow_results: bool = Field(
        True, description="serve %%sql -o / %%spark -o results and %%send_to_spark frames as Arrow "
                          "streams (advertised in GET /version; labwork's sparkmagic kernels then "
                          "use them); off: the kernels use sparkmagic's own JSON path")
    max_result_bytes: int = Field(
        2 * 1024 ** 3, ge=1024,
        description="largest result a session brings to a notebook as Arrow, in bytes of its Arrow "
                    "data (2 GiB); a larger one is refused with its size and how to sample "
                    "(-n, -m sample -r)")


class HistorySettings(Strict):
    """Run history: upload limits and delivery."""

    max_upload_mb: float = Field(100.0, gt=0, description="largest output '%labwork upload' accepts, in MB")
    flush_interval_s: float = Field(0.2, gt=0, description="seconds between a kernel's deliveries of records")
    heartbeat_s: float = Field(60.0, gt=0, description=(
        "how often a kernel with a run tells the control plane it is alive (seconds)"))
    stale_after_s: float = Field(600.0, gt=0, description=(
        "a running run not heard from for this long is closed as failed, 'kernel stopped reporting' "
        "(seconds; keep it well above heartbeat_s)"))
    reap_every_s: float = Field(30.0, gt=0, description="how often the control plane looks for such runs (seconds)")


class JobsSettings(Strict):
    """Jobs: notebooks run with papermill, now or on a cron schedule."""

    tick_s: float = Field(0.5, gt=0, le=60, description=(
        "how often the scheduler looks for due fire times and queued retries (seconds)"))
    misfire_grace_s: float = Field(60.0, gt=0, description=(
        "a fire time found later than this (the control plane was down) follows the job's missed-run "
        "policy instead of running as usual (seconds)"))
    kernel_start_timeout_s: float = Field(120.0, gt=0, description="seconds a job's kernel may take to start")
    stop_grace_s: float = Field(15.0, gt=0, description=(
        "seconds a run ended by timeout or cancel has to save its output notebook before it is killed"))
    retry_delay_s: float = Field(30.0, ge=0, description=(
        "default back-off before a job's first retry (seconds); it doubles for each further retry"))
    max_retry_delay_s: float = Field(3600.0, ge=0, description="the longest back-off between retries (seconds)")
    webhook_attempts: int = Field(4, ge=1, le=20, description="how many times a webhook is tried before giving up")
    webhook_timeout_s: float = Field(10.0, gt=0, description="seconds one webhook call may take")
    runs_kept_per_job: int = Field(200, ge=1, description=(
        "finished runs kept per job, with their output notebooks and logs (older ones are deleted)"))


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)") from exc
    return value


class AuthSettings(Strict):
    """Users and log-in (see docs/users.md): the authenticator and log-in limits."""

    authenticator: Literal["local", "header"] = Field("local", description=(
        "how people log in to the dashboard: 'local' (user name + password kept by labwork) or 'header' "
        "(a reverse proxy in front of labwork sets the user in proxy_header; passwords still work)"))
    proxy_header: str = Field("X-Forwarded-User", min_length=1, description=(
        "the header a trusted reverse proxy puts the logged-in user's name in (authenticator = 'header')"))
    trusted_proxies: list[Annotated[str, AfterValidator(_network)]] = Field(default_factory=list, description=(
        "addresses (IPs or networks, e.g. 127.0.0.1 or 10.0.0.0/8) whose proxy_header is believed; from "
        "any other address the header is ignored and logged"))
    login_attempts: int = Field(10, ge=1, description=(
        "failed log-ins allowed per user name and per address within login_window_s; more are answered "
        "429 with Retry-After"))
    login_window_s: float = Field(300.0, gt=0, description="the window of login_attempts, in seconds")


class IdleSettings(Strict):
    """Idle servers and kernels (labwork.notebooks.idle; a server's own idle timeout is in its
    configuration, `--idle 1h`)."""

    busy_ceiling: Duration = Field("24h", description=(
        "a kernel busy longer than this is reported (server log, status, the dashboard, a notice in "
        "JupyterLab), never stopped; e.g. '24h'"))
    cull_kernels_after: Duration = Field("3h", description=(
        "Jupyter culls a kernel idle this long inside a running server (jupyter_server's "
        "cull_idle_timeout; busy kernels never); '0s' turns kernel culling off"))
    cull_connected: bool = Field(False, description=(
        "cull idle kernels that a notebook is still connected to as well (jupyter_server's "
        "cull_connected)"))
    cull_interval: Duration = Field("5m", description=(
        "how often Jupyter looks for kernels to cull (jupyter_server's cull_interval), e.g. '5m'"))


class Settings(Strict):
    home: Path = Field(default_factory=default_home, description="state folder (LABWORK_HOME)")
    host: Host = Field("127.0.0.1", description="address the control plane binds")
    port: Port = Field(8790, description="port of the control plane (1-65535; 0 = any free)")
    db: DbUrl | None = Field(None, description="SQLAlchemy URL of the store; default SQLite under home")
    default_hours: float = Field(6.0, gt=0, description="a Jupyter server's time limit, in hours")
    extend_hours: float = Field(6.0, gt=0, description="hours one Extend adds")
    logs_kept_per_project: int = Field(10, ge=1, description="Jupyter server logs kept per project")
    kernel_memory_limits: Literal["auto", "cgroup", "rlimit", "off"] = Field("auto", description=(
        "how a run configuration's [resources] memory is enforced for local kernels: 'auto' (the "
        "kernel in its own cgroup, v2 or v1, where the machine allows it, else RLIMIT_AS), 'cgroup' "
        "(a cgroup or no limit), 'rlimit' (RLIMIT_AS only), 'off' (never enforced)"))
    deadline_check_s: float = Field(2.0, gt=0, description="seconds between deadline and idle checks")
    jupyter_start_timeout_s: float = Field(120.0, gt=0, description="seconds a Jupyter server may take to start")
    save_before_stop_s: float = Field(20.0, ge=0, description=(
        "before labwork stops a Jupyter server (deadline, idle, Stop), seconds its open JupyterLab tabs get "
        "to save every modified notebook (the stop goes on when all have said so; 0 = do not wait)"))
    warn_before_s: list[Annotated[float, Field(gt=0)]] = Field([900.0, 120.0], min_length=1, max_length=10, description=(
        "seconds before a server's deadline at which JupyterLab warns (with Extend and Save all)"))
    session_hours: float = Field(24.0, gt=0, description=(
        "how long a dashboard log-in lasts, in hours; after it the browser is asked for the token "
        "again (log-out ends it at once)"))
    target_state_s: float = Field(30.0, gt=0, description=(
        "seconds the Compute page keeps a docker/remote target's state (daemon or host reachable, "
        "its kernels) before asking again, in the background"))
    gateway: GatewaySettings = Field(default_factory=GatewaySettings, description="the [gateway] section")
    history: HistorySettings = Field(default_factory=HistorySettings, description="the [history] section")
    jobs: JobsSettings = Field(default_factory=JobsSettings, description="the [jobs] section")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="the [auth] section")
    idle: IdleSettings = Field(default_factory=IdleSettings, description="the [idle] section")

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


_SECTIONS = {"gateway": GatewaySettings, "history": HistorySettings, "jobs": JobsSettings,
             "idle": IdleSettings, "auth": AuthSettings}
ENV_SOURCE = "environment (LABWORK_*)"


def setting_variables() -> dict[str, str]:
    """Every setting's environment variable -> its key ("LABWORK_GATEWAY__MASTER" -> "gateway.master")."""
    out = {}
    for name in Settings.model_fields:
        if name in _SECTIONS:
            for sub in _SECTIONS[name].model_fields:
                out[envvars.env_name(name, sub)] = f"{name}.{sub}"
        else:
            out[envvars.env_name(name)] = name
    return out


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """LABWORK_PORT=1 -> {"port": "1"}; LABWORK_GATEWAY__MASTER=x -> {"gateway": {"master": x}}.
    A LABWORK_* variable that is neither a setting nor registered in `labwork.envvars` is a
    ConfigError naming the closest known name."""
    out: dict[str, Any] = {}
    settings_vars = setting_variables()
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key.startswith(envvars.TEST_PREFIX):
            continue
        if key not in settings_vars:
            if key in envvars.KERNEL_VARIABLES:
                continue  # LABWORK_URL, kernel context, ...: not settings
            near = envvars.closest(key, [*settings_vars, *envvars.KERNEL_VARIABLES])
            raise ConfigError(f"unknown environment variable {key}" + (f"; did you mean {near}?" if near else ""),
                              where=ENV_SOURCE, hint="'labwork config show' lists every setting and its variable",
                              details={"key": key, "closest": near})
        node = out
        path = envvars.setting_path(key)
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
    """One line: the key, what was expected and what was given; `where` is the source."""
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        msg = f"unknown setting '{key}'"
    else:
        text = first["msg"].removeprefix("Value error, ")
        if "got " not in text:
            text = f"{text[:1].lower()}{text[1:]} (got {first.get('input')!r})"
        msg = f"setting '{key}': {text}"
    return ConfigError(msg, where=source, details={"key": key, "errors": len(exc.errors())})


def _layers(flags: dict[str, Any] | None, environ: dict[str, str] | None
            ) -> tuple[Path, list[tuple[str, dict[str, Any]]]]:
    """The home folder and the sources in the order they apply: config.toml, environment, flags."""
    environ = dict(os.environ if environ is None else environ)
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    home = Path(flags.get("home") or environ.get("LABWORK_HOME") or default_home()).expanduser()
    layers: list[tuple[str, dict[str, Any]]] = []
    try:
        data = envvars.read_config(home)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=str(home / "config.toml")) from exc
    if data is not None:
        layers.append((str(home / "config.toml"), data))
    layers.append((ENV_SOURCE, _env_overrides(environ)))
    layers.append(("command-line flags", flags))
    return home, layers


def load_settings(flags: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build settings from every source, reporting the first bad key with where it came from."""
    home, layers = _layers(flags, environ)
    data: dict[str, Any] = {"home": home}
    for source, layer in layers:
        data = _merge(data, layer)
        try:
            Settings.model_validate(data)
        except ValidationError as exc:
            raise _describe(exc, source) from exc
    return Settings.model_validate(data)


def _leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in _SECTIONS and not prefix:
            out.update(_leaves(value, f"{key}."))
        else:
            out[prefix + key] = value
    return out


def describe_settings(flags: dict[str, Any] | None = None,
                      environ: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every setting as it is in effect: key, value, where it came from, its variable and its help
    (what `labwork config show` prints)."""
    settings = load_settings(flags, environ)
    _home, layers = _layers(flags, environ)
    sources: dict[str, str] = {}
    for source, layer in layers:
        for key in _leaves(layer):
            sources[key] = source
    if "home" not in sources and (flags or {}).get("home") is None and (
            (os.environ if environ is None else environ).get("LABWORK_HOME")):
        sources["home"] = ENV_SOURCE
    effective = _leaves(settings.model_dump(mode="json"))
    variables = {key: var for var, key in setting_variables().items()}
    rows = []
    for key, value in effective.items():
        section, _, name = key.rpartition(".")
        model = _SECTIONS[section] if section else Settings
        source = sources.get(key, "default")
        if source == ENV_SOURCE:
            source = f"environment ({variables[key]})"
        rows.append({"key": key, "value": value, "source": source,
                     "variable": variables[key], "help": model.model_fields[name].description or ""})
    return rows
