"""Every `LABWORK_*` environment variable that is not a setting, and the one way to read settings
from the environment and `LABWORK_HOME/config.toml`.

Settings (`labwork.settings`) are read as `LABWORK_<KEY>` and `LABWORK_<SECTION>__<KEY>`, over
`LABWORK_HOME/config.toml`, over their defaults. The variables below are the others: the context
the notebook-server manager and the kernel specs give a kernel, and the command line's gateway
credentials. `labwork.settings` reports a `LABWORK_*` variable that is neither, with the closest
name. Kernel-side code (`labwork.history.context`, `labwork.kernels.*`) reads its variables and
settings through this module: only the standard library is imported here, since it loads in every
kernel, also in environments without labwork's dependencies.
"""
from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PREFIX = "LABWORK_"
NESTED = "__"  # LABWORK_GATEWAY__MASTER is [gateway] master
TEST_PREFIX = "LABWORK_TEST_"  # the test suite's own switches (LABWORK_TEST_PG, ...)

HOME = "LABWORK_HOME"
URL = "LABWORK_URL"
PROJECT_DIR = "LABWORK_PROJECT_DIR"
PROJECT = "LABWORK_PROJECT"
PROJECT_COPY = "LABWORK_PROJECT_COPY"
RUNCONFIG = "LABWORK_RUNCONFIG"
HISTORY = "LABWORK_HISTORY"
SERVER_ID = "LABWORK_SERVER_ID"
SERVER_CONFIG = "LABWORK_SERVER_CONFIG"
KERNEL_ID = "LABWORK_KERNEL_ID"
FRAMEWORK = "LABWORK_FRAMEWORK"
SPARK_CONF = "LABWORK_SPARK_CONF"
UNPREPARED = "LABWORK_UNPREPARED"
TOKEN = "LABWORK_TOKEN"
TOKEN_FILE = "LABWORK_TOKEN_FILE"
KERNEL_ENDS = "LABWORK_KERNEL_ENDS"
GATEWAY_USER = "LABWORK_GATEWAY_USER"
GATEWAY_PASSWORD = "LABWORK_GATEWAY_PASSWORD"
API_TOKEN = "LABWORK_API_TOKEN"
SPARK_UI_ROOT = "LABWORK_SPARK_UI_ROOT"

# name -> what it holds (who sets it). LABWORK_HOME is also the `home` setting.
KERNEL_VARIABLES: dict[str, str] = {
    HOME: "the control plane's state folder (token, control.json, spool); default ~/.labwork",
    URL: "the control plane's base URL (else LABWORK_HOME/control.json's url); set by the server manager",
    PROJECT_DIR: "the project folder; set by the server manager and the kernel specs",
    PROJECT: "the project's name; set by the server manager and the kernel specs",
    PROJECT_COPY: "a remote host's copy of the project folder the kernel runs in; set by the SSH provisioner",
    RUNCONFIG: "the run configuration this kernel was made from; set by the kernel spec",
    HISTORY: "'1': run history is on from the first cell (the run configuration's default)",
    SERVER_ID: "the Jupyter server's id in the control plane; set by the server manager",
    SERVER_CONFIG: "the server's configuration (JSON: kind, hours, Spark resources); set by the server manager",
    KERNEL_ID: "the kernel's id, set by the kernel launcher for the Spark start-up",
    FRAMEWORK: "python, pyspark or spark: what the kernel launcher starts; set by the kernel spec",
    SPARK_CONF: "the Spark properties of a PySpark kernel (JSON); set by the kernel spec",
    UNPREPARED: "why the run configuration's environment is not ready (the kernel answers with it)",
    TOKEN: "never passed on: removed from the environment of Spark drivers",
    TOKEN_FILE: "the file holding a container's or remote kernel's personal token; set by the Docker and SSH provisioners",
    KERNEL_ENDS: "the Jupyter server's file of kernel ends (labwork.kernels.ends); set by the server manager",
    GATEWAY_USER: "user name for HTTP Basic to a standalone gateway ('labwork spark --url')",
    GATEWAY_PASSWORD: "password for HTTP Basic to a standalone gateway ('labwork spark --url')",
    SPARK_UI_ROOT: "where the control plane proxies a local PySpark kernel's Spark UI (/spark); set by the kernel spec",
    API_TOKEN: "a personal token ('labwork token create') the CLI sends instead of LABWORK_HOME/token",
}


def get(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A registered variable's value ('' counts as unset)."""
    if name not in KERNEL_VARIABLES:
        raise KeyError(f"{name} is not a registered LABWORK_* variable")
    value = (os.environ if environ is None else environ).get(name)
    return value or None


def home(environ: Mapping[str, str] | None = None) -> Path:
    return Path(get(HOME, environ) or Path.home() / ".labwork").expanduser()


def kernel_credential(state_home: Path | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """What a kernel sends the control plane as its bearer token: its user's personal token
    (LABWORK_TOKEN, or the file LABWORK_TOKEN_FILE names in a container or on another host), else
    the control plane's own (LABWORK_HOME/token: a server labwork started for itself)."""
    personal = get(TOKEN, environ)
    if personal:
        return personal
    token_file = get(TOKEN_FILE, environ)
    path = Path(token_file) if token_file else (state_home or home(environ)) / "token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def env_name(*path: str) -> str:
    """("gateway", "master") -> LABWORK_GATEWAY__MASTER."""
    return PREFIX + NESTED.join(p.upper() for p in path)


def setting_path(name: str) -> list[str]:
    """LABWORK_GATEWAY__MASTER -> ["gateway", "master"]."""
    return name[len(PREFIX):].lower().split(NESTED)


def read_config(home_dir: Path) -> dict[str, Any] | None:
    """LABWORK_HOME/config.toml as a dict; None when there is none (TOMLDecodeError when it is bad)."""
    cfg = home_dir / "config.toml"
    if not cfg.exists():
        return None
    return tomllib.loads(cfg.read_text())


def setting(section: str, key: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """A number of a settings section as the control plane layers it (LABWORK_<SECTION>__<KEY> over
    config.toml over `default`), for kernel-side code that cannot import pydantic. A value that is
    not a number is passed over: the kernel must never fail on it (the control plane reports it)."""
    env = os.environ if environ is None else environ
    value = default
    try:
        raw = ((read_config(home(env)) or {}).get(section) or {}).get(key, value)
        value = float(raw)
    except (OSError, ValueError, TypeError, AttributeError, tomllib.TOMLDecodeError):
        pass
    text = env.get(env_name(section, key))
    if text:
        try:
            value = float(text)
        except ValueError:
            pass
    return value


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The known name nearest to a mistyped one (LABWORK_PROT -> LABWORK_PORT), if any is near."""
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return found[0] if found else None
