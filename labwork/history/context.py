"""What kernel we are in: read once from the environment the labwork kernel launcher sets.

Every variable is optional, so `%load_ext labwork` works in any IPython. They are registered, with
what each holds, in `labwork.envvars` (HOME, URL, PROJECT_DIR, PROJECT, RUNCONFIG, HISTORY);
`JPY_SESSION_NAME` (the notebook) is set by jupyter_server. Without LABWORK_PROJECT_DIR the project
is the folder holding labwork.toml above the cwd; without LABWORK_PROJECT its name is labwork.toml's.

Only the standard library is imported here: this module loads in every kernel.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from labwork import envvars

TRUE = {"1", "true", "yes", "on"}


def _kernel_id() -> str | None:
    """The kernel id from ipykernel's connection file name (`kernel-<id>.json`)."""
    if "ipykernel" not in sys.modules:
        return None
    try:
        from ipykernel.connect import get_connection_file
        name = Path(get_connection_file()).name
    except Exception:
        return None
    stem = name[:-5] if name.endswith(".json") else name
    return stem[7:] if stem.startswith("kernel-") else stem or None


def _find_project_dir(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / "labwork.toml").is_file():
            return folder
    return None


def _project_name(project_dir: Path | None) -> str | None:
    if project_dir is None:
        return None
    try:
        import tomllib
        data = tomllib.loads((project_dir / "labwork.toml").read_text(encoding="utf-8"))
        name = (data.get("project") or {}).get("name")
        if isinstance(name, str) and name:
            return name
    except Exception:
        pass
    return project_dir.name


def _notebook(raw: str | None, project_dir: Path | None) -> str | None:
    """The notebook path, relative to the project folder when it lies inside it."""
    if not raw:
        return None
    path = Path(raw)
    if path.is_absolute() and project_dir is not None:
        try:
            return path.resolve().relative_to(project_dir.resolve()).as_posix()
        except ValueError:
            return str(path)
    return path.as_posix()


@dataclass
class KernelContext:
    home: Path
    url: str | None
    project_dir: Path | None
    project: str | None
    runconfig: str | None
    notebook: str | None
    kernel_id: str
    history_default: bool
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    project_copy: Path | None = None  # a remote host's copy of project_dir: where its files are read

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "history-kernel.log"

    @property
    def outputs_dir(self) -> Path:
        return (self.project_copy or self.project_dir or Path.cwd()) / "outputs"

    def token(self) -> str | None:
        """The kernel's credential: its user's personal token (LABWORK_TOKEN, which the server
        manager gives the server's kernels, or the file LABWORK_TOKEN_FILE names for a kernel in a
        container or on another host), so the runs are theirs; else LABWORK_HOME/token."""
        return envvars.kernel_credential(self.home)

    def control_url(self, *, prefer_file: bool = False) -> str | None:
        """LABWORK_URL, else control.json's url. After a failure the file is preferred: a
        restarted control plane writes its new address there."""
        from_file = None
        try:
            from_file = json.loads((self.home / "control.json").read_text()).get("url")
        except (OSError, ValueError, AttributeError):
            pass
        if prefer_file and from_file:
            return from_file
        return self.url or from_file

    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb() * 1024 * 1024)

    def max_upload_mb(self) -> float:
        """history.max_upload_mb from LABWORK_HISTORY__MAX_UPLOAD_MB or LABWORK_HOME/config.toml."""
        return self.history_setting("max_upload_mb", 100.0)

    def history_setting(self, key: str, default: float) -> float:
        """A number of the [history] settings, layered as the control plane layers them."""
        return envvars.setting("history", key, default, {**os.environ, envvars.HOME: str(self.home)})

    def run_record(self) -> dict:
        return {"source": "kernel" if self.kernel_id_known else "script",
                "project": self.project,
                "project_dir": str(self.project_dir) if self.project_dir else None,
                "notebook": self.notebook, "runconfig": self.runconfig, "kernel_id": self.kernel_id,
                "host": self.host, "pid": self.pid,
                "info": {"python": sys.version.split()[0], "executable": sys.executable,
                         "cwd": os.getcwd(),
                         **({"project_copy": str(self.project_copy)} if self.project_copy else {})}}

    kernel_id_known: bool = True


def detect(environ: dict[str, str] | None = None, user_ns: dict | None = None) -> KernelContext:
    env = dict(os.environ if environ is None else environ)
    home = envvars.home(env)
    project_dir: Path | None
    if envvars.get(envvars.PROJECT_DIR, env):
        project_dir = Path(env[envvars.PROJECT_DIR]).expanduser().resolve()
    else:
        project_dir = _find_project_dir(Path.cwd().resolve())
    raw_nb = env.get("JPY_SESSION_NAME") or (user_ns or {}).get("__vsc_ipynb_file__")
    kid = _kernel_id()
    ctx = KernelContext(
        home=home,
        url=(envvars.get(envvars.URL, env) or "").rstrip("/") or None,
        project_dir=project_dir,
        project=envvars.get(envvars.PROJECT, env) or _project_name(project_dir),
        runconfig=envvars.get(envvars.RUNCONFIG, env),
        notebook=_notebook(raw_nb, project_dir),
        kernel_id=kid or uuid.uuid4().hex,
        history_default=(envvars.get(envvars.HISTORY, env) or "").strip().lower() in TRUE,
    )
    ctx.kernel_id_known = kid is not None
    if envvars.get(envvars.PROJECT_COPY, env):
        ctx.project_copy = Path(env[envvars.PROJECT_COPY]).expanduser().resolve()
    return ctx
