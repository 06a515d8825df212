"""How a project's Jupyter server is launched: its command line, its environment, and the refusal
of a second one while one runs."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from labwork.errors import Conflict
from labwork.lab import LABEXTENSIONS
from labwork.notebooks.config import LIFETIME_FIELDS, ServerConfig, parse_config
from labwork.notebooks.rows import iso, server_url
from labwork.store.tables import ServerRow

from labwork.kernels.memory_display import write_config  # the status bar's memory limit (JUPYTER_CONFIG_PATH)

SPEC_MANAGER = "labwork.kernels.specmanager"
LAB_EXTENSION = "labwork.lab"  # the server extension and the prebuilt front end (labwork/lab/)


def jupyter_command(ui: str, port: int, root: Path, base_path: str = "") -> list[str]:
    """JupyterLab (or the classic Notebook) on 127.0.0.1:`port`, serving `root` under `base_path`
    (the prefix the control plane proxies it at, "/user/<name>/<project>"), with labwork's kernel
    spec manager when it is installed; `port_retries=0`, so the port is the one recorded."""
    cmd = [sys.executable, "-m", "jupyterlab" if ui == "lab" else "notebook",
           "--no-browser", "--allow-root", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}"]
    if base_path:
        cmd.append(f"--ServerApp.base_url={base_path}/")
    if importlib.util.find_spec(SPEC_MANAGER) is not None:
        cmd.append(f"--ServerApp.kernel_spec_manager_class={SPEC_MANAGER}.LabworkKernelSpecManager")
    return cmd + lab_extension_args()


def lab_extension_args() -> list[str]:
    """labwork's Jupyter server extension, and its prebuilt front end for JupyterLab and Notebook 7
    (both are `LabServerApp`s)."""
    return [f"--ServerApp.jpserver_extensions={LAB_EXTENSION}=True",
            f"--LabServerApp.extra_labextensions_path={LABEXTENSIONS}"]


def server_environment(*, home: Path, url: str, root: Path, name: str, server_id: int | None,
                       config: ServerConfig, token: str | None,
                       kernel_ends: Path | None = None) -> dict[str, str]:
    """The environment of a process whose kernels are the project's `"<project> <runconfig>"` (a
    Jupyter server; a job's papermill runner, with no server id and no token): ours without
    Jupyter tokens of others, plus what its kernels need to find the control plane, the project,
    the server and its configuration; `kernel_ends` is where its kernels' ends are recorded (made
    here, empty and 0600)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_TOKEN", "JPY_"))}
    env.update({
        "LABWORK_HOME": str(home), "LABWORK_URL": url or "",
        "LABWORK_PROJECT_DIR": str(root), "LABWORK_PROJECT": name,
        "LABWORK_SERVER_ID": "" if server_id is None else str(server_id),
        "LABWORK_SERVER_CONFIG": config.model_dump_json(), "PYTHONUNBUFFERED": "1",
    })
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        p for p in (str(write_config(home / "jupyter-config")), os.environ.get("JUPYTER_CONFIG_PATH", "")) if p)
    env.pop("LABWORK_KERNEL_ENDS", None)  # never another server's
    if kernel_ends is not None:
        os.close(os.open(kernel_ends, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        os.chmod(kernel_ends, 0o600)
        env["LABWORK_KERNEL_ENDS"] = str(kernel_ends)
    if token:  # the token travels in the environment, not on the command line (which `ps` shows)
        env["JUPYTER_TOKEN"] = token
    return env


def refuse_second(active: ServerRow, cfg: ServerConfig, name: str) -> None:
    """Raise the `Conflict` of a start while `active` runs: same runtime (open it) or another (stop first)."""
    running_cfg = parse_config(active.config)
    where = f"{active.url} (port {active.port}, pid {active.pid}, started {iso(active.started_at)})"
    details = {"server_id": active.id, "url": server_url(active), "port": active.port}
    if running_cfg.same_runtime(cfg):
        raise Conflict(f"a Jupyter server already runs for project '{name}' at {where}",
                       hint=f"open {server_url(active)} or stop it first with 'labwork notebook stop'",
                       hints={"dashboard": "open it with Open Jupyter, or press Stop first"},
                       details=details)
    changed = sorted(k for k, v in cfg.model_dump(exclude=LIFETIME_FIELDS).items()
                     if running_cfg.model_dump(exclude=LIFETIME_FIELDS)[k] != v)
    raise Conflict(f"a Jupyter server already runs for project '{name}' at {where} with another "
                   f"configuration (differs in: {', '.join(changed)}); changing the configuration "
                   "needs a stop first", hint="stop it with 'labwork notebook stop', then start it again",
                   hints={"dashboard": "press Stop, then Start with the new configuration"}, details=details)
