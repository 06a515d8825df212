"""sparkmagic kernels for run configurations whose target is Livy (the gateway or a cluster's).

`sparkmagic_kernel_spec` writes the kernel's own `SPARKMAGIC_CONF_DIR/config.json` and returns a
kernel.json-style dict; `delete_project_sessions` deletes the Spark sessions a project's kernels
made (each session's `conf` carries the project tag) when the project's server stops.
"""
from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from labwork.spark_properties import PROJECT_TAG, UMASK_DEFAULT, UMASK_PROPERTY

# The user's personal token from the kernel's environment (labwork.gateway.sparkmagic_auth): what
# kernels of the control plane's own /livy use, so no token is ever written into their config.
TOKEN_AUTH = "Labwork_Token"
TOKEN_AUTH_CLASS = "labwork.gateway.sparkmagic_auth.PersonalToken"
AUTH_KINDS = ("None", "Basic_Access", "Kerberos", TOKEN_AUTH)
_SPARKMAGIC_AUTHENTICATORS = {"Kerberos": "sparkmagic.auth.kerberos.Kerberos",
                              "None": "sparkmagic.auth.customauth.Authenticator",
                              "Basic_Access": "sparkmagic.auth.basic.Basic"}
_KERNEL_MODULES = {"python": "sparkmagic.kernels.pysparkkernel.pysparkkernel",
                   "scala": "sparkmagic.kernels.sparkkernel.sparkkernel"}
_SNAKE = {"driver_memory": "driverMemory", "executor_memory": "executorMemory",
          "driver_cores": "driverCores", "executor_cores": "executorCores",
          "num_executors": "numExecutors", "py_files": "pyFiles"}
_LIVY_SESSION_KEYS = {"driverMemory", "executorMemory", "driverCores", "executorCores",
                      "numExecutors", "conf", "jars", "pyFiles", "files", "archives", "queue",
                      "proxyUser", "ttl", "idleTimeout"}


def startup_timeout_for(livy_url: str, master: str | None = None) -> int:
    """Seconds sparkmagic waits for a session to become idle: local drivers start in seconds, a
    YARN or Kubernetes application may wait for containers."""
    m = (master or "").lower()
    if m.startswith("local"):
        return 180
    if m.startswith("spark://"):
        return 300
    if m.startswith(("yarn", "k8s://")):
        return 600
    host = urlparse(livy_url).hostname or ""
    return 180 if host in ("127.0.0.1", "localhost", "::1") and not m else 600


def session_properties(session_conf: dict[str, Any] | None, project: str | None) -> dict[str, Any]:
    """Livy create-session properties from a run configuration's Spark settings."""
    props: dict[str, Any] = {}
    conf: dict[str, str] = {}
    for key, value in (session_conf or {}).items():
        if value is None:
            continue
        key = _SNAKE.get(key, key)
        if key == "conf":
            conf.update({str(k): str(v) for k, v in dict(value).items() if v is not None})
        elif key in _LIVY_SESSION_KEYS:
            props[key] = value
        elif key.startswith("spark."):
            conf[key] = str(value)
        else:
            raise ValueError(f"session_conf: unknown key '{key}' (expected one of "
                             f"{', '.join(sorted(_LIVY_SESSION_KEYS))} or a spark.* property)")
    conf.setdefault(UMASK_PROPERTY, UMASK_DEFAULT)
    if project:
        conf[PROJECT_TAG] = project
    props["conf"] = conf
    return props


def sparkmagic_kernel_spec(*, display_name: str, language: str, conf_dir: Path, livy_url: str,
                           auth: str = "None", username: str | None = None,
                           password: str | None = None, session_conf: dict | None = None,
                           project: str | None = None, master: str | None = None,
                           startup_timeout_s: int | None = None) -> dict:
    """Write `conf_dir/config.json` for sparkmagic and return the kernel.json dict.

    language: "python" (PySpark kernel) or "scala" (Spark kernel). auth: "None", "Basic_Access",
    "Kerberos" or `TOKEN_AUTH` (the kernel's `LABWORK_TOKEN` as a bearer token; no password is
    written then). The sessions carry `spark.labwork.project` (= `project`, else `display_name`)
    so that `delete_project_sessions` can find them.
    """
    if language not in _KERNEL_MODULES:
        raise ValueError(f"language: expected 'python' or 'scala', got {language!r}")
    if auth not in AUTH_KINDS:
        raise ValueError(f"auth: expected one of {', '.join(AUTH_KINDS)}, got {auth!r}")
    if auth == TOKEN_AUTH and (username or password):
        raise ValueError(f"auth {TOKEN_AUTH}: the kernel sends its own LABWORK_TOKEN; "
                         "give no username or password")
    conf_dir = Path(conf_dir)
    conf_dir.mkdir(parents=True, exist_ok=True)
    creds = {"username": username or "", "url": livy_url.rstrip("/"), "auth": auth,
             "base64_password": base64.b64encode((password or "").encode()).decode()}
    timeout = startup_timeout_s or startup_timeout_for(livy_url, master)
    config = {
        "kernel_python_credentials": creds,
        "kernel_scala_credentials": creds,
        "kernel_r_credentials": creds,
        "session_configs": session_properties(session_conf, project or display_name),
        "livy_session_startup_timeout_seconds": timeout,
        "heartbeat_refresh_seconds": 30,
        "heartbeat_retry_seconds": 10,
        "livy_server_heartbeat_timeout_seconds": 60,
        "wait_for_idle_timeout_seconds": 15,
        "custom_headers": {"X-Requested-By": "labwork"},
        "cleanup_all_sessions_on_exit": True,
        "use_auto_viz": True,
        "coerce_dataframe": True,
        "default_maxrows": 2500,
        "retry_policy": "configurable",
        "retry_seconds_to_sleep_list": [0.2, 0.5, 1, 3, 5],
        "configurable_retry_policy_max_retries": 8,
        "authenticators": {**_SPARKMAGIC_AUTHENTICATORS, TOKEN_AUTH: TOKEN_AUTH_CLASS},
    }
    path = conf_dir / "config.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh, indent=2)
    tmp.replace(path)
    return {
        "argv": [sys.executable, "-m", _KERNEL_MODULES[language], "-f", "{connection_file}"],
        "display_name": display_name,
        "language": language,
        "env": {"SPARKMAGIC_CONF_DIR": str(conf_dir)},
        "metadata": {"labwork": {"livy_url": livy_url, "project_tag": project or display_name}},
    }


def delete_project_sessions(livy_url: str, auth_headers: dict[str, str] | None,
                            project_tag: str, *, timeout: float = 30.0) -> int:
    """Delete every session on `livy_url` whose conf carries `spark.labwork.project = tag`."""
    import httpx
    headers = {"X-Requested-By": "labwork", **(auth_headers or {})}
    deleted = 0
    with httpx.Client(base_url=livy_url.rstrip("/"), headers=headers, timeout=timeout) as client:
        sessions: list[dict] = []
        start = 0
        while True:
            r = client.get("/sessions", params={"from": start, "size": 100})
            r.raise_for_status()
            page = r.json()
            batch = page.get("sessions") or []
            sessions.extend(batch)
            start += len(batch)
            if not batch or start >= int(page.get("total") or 0):
                break
        for s in sessions:
            if (s.get("conf") or {}).get(PROJECT_TAG) != project_tag:
                continue
            r = client.delete(f"/sessions/{s['id']}")
            if r.status_code in (200, 404):
                deleted += r.status_code == 200
            else:
                r.raise_for_status()
    return deleted
