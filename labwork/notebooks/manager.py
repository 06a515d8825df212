"""The notebook-server manager: one Jupyter server per project, with a deadline.

One `ServerManager` per control plane (`ctx.parts["servers"]`). Servers are started detached
(`start_new_session=True`) so they outlive the control plane; their output goes to
`LABWORK_HOME/logs/servers/<project_id>/<server_id>.log`, which also receives labwork's own lines
(start, deadline, extension, stop and its reason) and is kept after the server stops (the last
`settings.logs_kept_per_project` per project). A background thread checks deadlines and liveness
every `settings.deadline_check_s`. At start-up `adopt()` takes over servers a previous control
plane left running and marks dead ones stopped.

Every public method returns plain JSON-able dicts; their shapes are documented in docs/notebooks.md.
"""
from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import select

from labwork.errors import ConfigError, Conflict, NotFound, Unavailable
from labwork.notebooks.config import MAX_HOURS, ServerConfig, parse_config
from labwork.notebooks.preview import notebook_in_project
from labwork.notebooks.recent import last_config, recent_notebooks
from labwork.private import user_umask
from labwork.project.files import load_project
from labwork.project.registry import get_project_row
from labwork.server.daemon import pid_alive, port_free
from labwork.store.tables import ProjectRow, ServerRow

log = logging.getLogger("labwork.notebooks")

ACTIVE = ("starting", "running", "stopping")
FIRST_PORT = 8888
SPEC_MANAGER = "labwork.kernels.specmanager"
# The dashboard's phrasing of the hints below (the CLI's names its commands and flags).
START_HINTS = {"dashboard": "start one with Start on the project's Jupyter page"}
NO_LIMIT_HINTS = {"dashboard": "for a server that never stops, stop it and start it again with 'no limit' ticked"}
LOG_CHUNK = 1 << 20  # at most 1 MiB of log per `logs` call


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:  # SQLite returns naive datetimes
        return dt.replace(tzinfo=UTC)
    return dt


def _iso(dt: datetime | None) -> str | None:
    dt = _aware(dt)
    return dt.isoformat() if dt else None


def tail(path: str | Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file ('' when it is gone)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _last_meaningful_line(path: str | Path) -> str:
    for line in reversed(tail(path, 40).splitlines()):
        if line.strip() and not line.startswith("[labwork]"):
            return line.strip()[:300]
    return ""


def kernel_environment(settings: Any, control_url: str | None, *, root: Path, name: str,
                       server_id: int | None, config: ServerConfig, token: str | None = None) -> dict[str, str]:
    """The environment of a process whose kernels are the project's `"<project> <runconfig>"`
    (a Jupyter server; a job's papermill runner, with no server id and no token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_TOKEN", "JPY_"))}
    env.update({
        "LABWORK_HOME": str(settings.home), "LABWORK_URL": control_url or "",
        "LABWORK_PROJECT_DIR": str(root), "LABWORK_PROJECT": name,
        "LABWORK_SERVER_ID": "" if server_id is None else str(server_id),
        "LABWORK_SERVER_CONFIG": config.model_dump_json(), "PYTHONUNBUFFERED": "1",
    })
    if token:  # the token travels in the environment, not on the command line (which `ps` shows)
        env["JUPYTER_TOKEN"] = token
    return env


class ServerManager:
    """Starts, watches, extends and stops the projects' Jupyter servers."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.store = ctx.store
        self._guard = threading.Lock()
        self._locks: dict[int, threading.RLock] = {}
        self._port_lock = threading.Lock()
        self._procs: dict[int, subprocess.Popen] = {}  # servers this process started, to reap them
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the app's loop, for async hooks

    # ------------------------------------------------------------------ helpers
    def _lock(self, project_id: int) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(project_id, threading.RLock())

    def _project(self, ref: int | str | Path, *, register: bool = False) -> dict[str, Any]:
        """Only starting a server registers an unregistered folder (reads never do)."""
        return get_project_row(self.store, ref, register=register)

    def _log_path(self, project_id: int, server_id: int) -> Path:
        return self.settings.logs_dir / "servers" / str(project_id) / f"{server_id}.log"

    @staticmethod
    def _note(path: str | Path, text: str) -> None:
        """Append labwork's own line to a server log (it shows in `logs`)."""
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"[labwork] {_now().isoformat(timespec='seconds')} {text}\n")
        except OSError:
            log.warning("cannot write to %s", path)

    def _active_row(self, s, project_id: int) -> ServerRow | None:
        return s.scalar(select(ServerRow).where(ServerRow.project_id == project_id,
                                                ServerRow.state.in_(ACTIVE))
                        .order_by(ServerRow.id.desc()).limit(1))

    def _alive(self, row: ServerRow) -> bool:
        proc = self._procs.get(row.id)
        if proc is not None and proc.poll() is not None:
            return False
        return pid_alive(row.pid)

    def _exit_code(self, server_id: int, wait: float = 0.0) -> int | None:
        """The exit code of a server this process started (None when unknown)."""
        proc = self._procs.get(server_id)
        if proc is None:
            return None
        if wait:  # a killed multi-threaded process is a zombie a moment before it can be reaped
            try:
                return proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                return None
        return proc.poll()

    @staticmethod
    def _answers(row: ServerRow, timeout: float = 2.0) -> bool:
        try:
            r = httpx.get(f"{row.url}/api/status", headers={"Authorization": f"token {row.token}"},
                          timeout=timeout)
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def server_url(row: ServerRow) -> str | None:
        """The UI's address with the token (what a person opens)."""
        if not row.url:
            return None
        page = "lab" if row.ui == "lab" else "tree"
        return f"{row.url}/{page}?token={row.token}"

    @staticmethod
    def notebook_url(row: ServerRow, notebook: str) -> str:
        page = "lab/tree" if row.ui == "lab" else "notebooks"
        return f"{row.url}/{page}/{quote(notebook)}?token={row.token}"

    def server_dict(self, row: ServerRow, project: dict[str, Any] | None = None) -> dict[str, Any]:
        deadline = _aware(row.deadline)
        active = row.state in ACTIVE
        left = None
        if active and deadline is not None:
            left = max(0, int((deadline - _now()).total_seconds()))
        return {
            "id": row.id, "project": project, "state": row.state, "ui": row.ui, "config": row.config,
            "port": row.port, "base_url": row.url, "url": self.server_url(row) if active else None,
            "token": row.token if active else None, "pid": row.pid,
            "started": _iso(row.started_at), "deadline": _iso(deadline), "seconds_left": left,
            "no_limit": deadline is None, "stopped": _iso(row.stopped_at), "stop_reason": row.stop_reason,
            "log_path": row.log_path,
        }

    def _projects_by_id(self, s, ids: set[int]) -> dict[int, dict[str, Any]]:
        rows = s.scalars(select(ProjectRow).where(ProjectRow.id.in_(ids))) if ids else []
        return {r.id: {"id": r.id, "name": r.name, "path": r.path} for r in rows}

    @staticmethod
    def _brief(project: dict[str, Any]) -> dict[str, Any]:
        return {"id": project["id"], "name": project["name"], "path": project["path"]}

    # ------------------------------------------------------------------ start
    def _pick_port(self, s) -> int:
        reserved = {p for p in s.scalars(select(ServerRow.port).where(ServerRow.state.in_(ACTIVE))) if p}
        for port in range(FIRST_PORT, FIRST_PORT + 500):
            if port not in reserved and port_free("127.0.0.1", port):
                return port
        raise Unavailable(f"no free port in {FIRST_PORT}..{FIRST_PORT + 499}", where="127.0.0.1")

    def _command(self, ui: str, port: int, root: Path) -> list[str]:
        cmd = [sys.executable, "-m", "jupyterlab" if ui == "lab" else "notebook",
               "--no-browser", "--allow-root", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}"]
        if importlib.util.find_spec(SPEC_MANAGER) is not None:
            cmd.append(f"--ServerApp.kernel_spec_manager_class={SPEC_MANAGER}.LabworkKernelSpecManager")
        return cmd

    def _environment(self, *, root: Path, name: str, server_id: int, config: ServerConfig,
                     token: str) -> dict[str, str]:
        return kernel_environment(self.settings, self.ctx.url, root=root, name=name, server_id=server_id,
                                  config=config, token=token)

    def start(self, project_ref: int | str | Path, config: ServerConfig | dict[str, Any] | None = None
              ) -> dict[str, Any]:
        """Start the project's server and wait until it answers; the `status` dict of it."""
        cfg = parse_config(config)
        if "hours" not in cfg.model_fields_set:
            cfg = cfg.model_copy(update={"hours": self.settings.default_hours})
        project = self._project(project_ref, register=True)
        loaded = load_project(project["path"])  # a broken labwork.toml stops here, clearly
        root = loaded.root
        with self._lock(project["id"]):
            with self.store.session() as s:
                active = self._active_row(s, project["id"])
            if active is not None:
                if self._alive(active):
                    self._refuse_second(active, cfg, loaded.name)
                self._mark_dead(active.id, "the server process was gone when a new start was asked")
            token = secrets.token_urlsafe(32)
            now = _now()
            with self._port_lock, self.store.session() as s:
                port = self._pick_port(s)
                row = ServerRow(project_id=project["id"], state="starting", ui=cfg.ui,
                                config=cfg.model_dump(mode="json"), port=port, url=f"http://127.0.0.1:{port}",
                                token=token, log_path="", started_at=now,
                                deadline=now + timedelta(hours=cfg.hours) if cfg.hours else None)
                s.add(row)
                s.flush()
                row.log_path = str(self._log_path(project["id"], row.id))
                server_id, log_path = row.id, Path(row.log_path)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            ui_name = "JupyterLab" if cfg.ui == "lab" else "Jupyter Notebook (classic UI)"
            limit = f"deadline {_iso(now + timedelta(hours=cfg.hours))} ({cfg.hours:g} h)" if cfg.hours \
                else "no time limit"
            self._note(log_path, f"starting {ui_name} for project '{loaded.name}' ({root}) on port {port}; "
                                 f"{cfg.kind} configuration; {limit}")
            cmd = self._command(cfg.ui, port, root)
            env = self._environment(root=root, name=loaded.name, server_id=server_id, config=cfg, token=token)
            try:
                with open(log_path, "ab") as out:
                    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=root, env=env, start_new_session=True, close_fds=True,
                                            umask=user_umask())  # the user's files get the user's modes
            except OSError as exc:
                self._finish(server_id, "failed", f"could not run Jupyter: {exc}")
                raise Unavailable(f"could not run Jupyter: {exc}", where=" ".join(cmd[:3])) from exc
            self._procs[server_id] = proc
            with self.store.session() as s:
                s.get(ServerRow, server_id).pid = proc.pid
            self._wait_started(server_id, proc, f"http://127.0.0.1:{port}", token, log_path)
            with self.store.session() as s:
                row = s.get(ServerRow, server_id)
                row.state = "running"
            self._note(log_path, f"server running at http://127.0.0.1:{port} (pid {proc.pid})")
            self._prune_logs(project["id"])
        return self.status(project["id"])

    def _refuse_second(self, active: ServerRow, cfg: ServerConfig, name: str) -> None:
        running_cfg = parse_config(active.config)
        where = f"{active.url} (port {active.port}, pid {active.pid}, started {_iso(active.started_at)})"
        details = {"server_id": active.id, "url": self.server_url(active), "port": active.port}
        if running_cfg.same_runtime(cfg):
            raise Conflict(f"a Jupyter server already runs for project '{name}' at {where}",
                           hint=f"open {self.server_url(active)} or stop it first with 'labwork notebook stop'",
                           hints={"dashboard": "open it with Open Jupyter, or press Stop first"},
                           details=details)
        changed = sorted(k for k, v in cfg.model_dump(exclude={"hours"}).items()
                         if running_cfg.model_dump(exclude={"hours"})[k] != v)
        raise Conflict(f"a Jupyter server already runs for project '{name}' at {where} with another "
                       f"configuration (differs in: {', '.join(changed)}); changing the configuration "
                       "needs a stop first", hint="stop it with 'labwork notebook stop', then start it again",
                       hints={"dashboard": "press Stop, then Start with the new configuration"}, details=details)

    def _wait_started(self, server_id: int, proc: subprocess.Popen, base: str, token: str,
                      log_path: Path) -> None:
        timeout = self.settings.jupyter_start_timeout_s
        limit = time.monotonic() + timeout
        problem = f"it did not answer within {timeout:g} s"
        with httpx.Client(timeout=2.0, headers={"Authorization": f"token {token}"}) as http:
            while time.monotonic() < limit:
                code = proc.poll()
                if code is not None:
                    problem = f"it exited with code {code} while starting"
                    break
                try:
                    if http.get(f"{base}/api/status").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        if proc.poll() is None:
            self._terminate(proc.pid, grace=5.0, proc=proc)
        last = tail(log_path, 15)
        self._finish(server_id, "failed", f"the Jupyter server did not start: {problem}")
        raise Unavailable(f"the Jupyter server did not start: {problem}\n--- last lines of its log ---\n{last}",
                          where=str(log_path), details={"log": last},
                          hint=f"see the whole log with 'labwork notebook logs --server {server_id}'",
                          hints={"dashboard": "see the whole log with Server logs"})

    def _finish(self, server_id: int, state: str, reason: str, *, when: datetime | None = None,
                how: str | None = None) -> None:
        with self.store.session() as s:
            row = s.get(ServerRow, server_id)
            row.state = state
            row.stopped_at = when or _now()
            row.stop_reason = reason
            path = row.log_path
        self._note(path, f"server {state}: {reason}" + (f" ({how})" if how else ""))
        self._procs.pop(server_id, None)

    def _mark_dead(self, server_id: int, why: str, *, when: datetime | None = None) -> None:
        with self.store.session() as s:
            row = s.get(ServerRow, server_id)
            path = row.log_path
        code = self._exit_code(server_id, wait=5.0)
        exit_text = f"exit code {code}" if code is not None else "exit code unknown"
        last = _last_meaningful_line(path)
        reason = f"{why} ({exit_text})" + (f"; last log line: {last}" if last else "")
        self._finish(server_id, "stopped", reason, when=when)

    def _prune_logs(self, project_id: int) -> None:
        keep = max(1, self.settings.logs_kept_per_project)
        with self.store.session() as s:
            old = s.scalars(select(ServerRow).where(ServerRow.project_id == project_id)
                            .order_by(ServerRow.id.desc()).offset(keep)).all()
            paths = [r.log_path for r in old if r.state not in ACTIVE and r.log_path]
        for p in paths:
            try:
                Path(p).unlink(missing_ok=True)
            except OSError:
                log.warning("cannot delete old log %s", p)

    # ------------------------------------------------------------------ stop
    def stop(self, project_ref: int | str | Path, reason: str = "stopped by the user") -> dict[str, Any]:
        """Shut the project's server down cleanly (kernels too) and record why."""
        project = self._project(project_ref)
        with self._lock(project["id"]):
            with self.store.session() as s:
                row = self._active_row(s, project["id"])
                server_id = row.id if row else None
            if server_id is None:
                raise NotFound(f"no Jupyter server runs for project '{project['name']}'",
                               hint="start one with 'labwork notebook start'", hints=START_HINTS)
            self._stop_server(server_id, reason, project["path"])
        return self.status(project["id"])

    def _stop_server(self, server_id: int, reason: str, project_path: str) -> None:
        with self.store.session() as s:
            row = s.get(ServerRow, server_id)
            row.state = "stopping"
            pid, base, token, log_path = row.pid, row.url, row.token, row.log_path
        self._note(log_path, f"stopping the server: {reason}")
        self._gateway_cleanup(project_path, log_path)
        how = "shut down cleanly"
        if pid and self._pid_running(server_id, pid):
            kernels = self._children(pid)
            try:
                httpx.post(f"{base}/api/shutdown", headers={"Authorization": f"token {token}"}, timeout=10)
            except httpx.HTTPError as exc:
                self._note(log_path, f"clean shutdown request failed: {exc}")
            if not self._wait_exit(server_id, pid, 20.0):
                how = "terminated (it did not shut down within 20 s)"
                self._terminate(pid, grace=5.0, proc=self._procs.get(server_id))
            for k in kernels:  # kernels run in their own sessions: make sure none is left behind
                self._terminate(k, grace=3.0)
        else:
            how = "it was no longer running"
        code = self._exit_code(server_id, wait=5.0)
        if code is not None:
            how += f", exit code {code}"
        self._finish(server_id, "stopped", reason, how=how)

    def _gateway_cleanup(self, project_path: str, log_path: str) -> None:
        """Delete the Spark sessions the project's kernels made on the control plane's gateway."""
        from labwork.gateway.gateway import Gateway

        gateway = self.ctx.parts.get("gateway")
        if not isinstance(gateway, Gateway):
            return  # a control plane without the gateway part
        try:
            deleted = gateway.delete_project_sessions_sync(project_path)
        except Exception as exc:  # the gateway's trouble never blocks a stop
            self._note(log_path, f"could not delete the project's Spark sessions: {exc!r}")
            return
        if deleted:
            self._note(log_path, f"deleted {deleted} Spark session(s) of the project on the gateway")

    def _pid_running(self, server_id: int, pid: int) -> bool:
        proc = self._procs.get(server_id)
        if proc is not None:
            return proc.poll() is None
        return pid_alive(pid)

    def _wait_exit(self, server_id: int, pid: int, timeout: float) -> bool:
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            if not self._pid_running(server_id, pid):
                return True
            time.sleep(0.1)
        return False

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            import psutil
            return [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except Exception:
            return []

    @staticmethod
    def _terminate(pid: int, *, grace: float, proc: subprocess.Popen | None = None) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds (our own children are reaped)."""
        def alive() -> bool:
            return proc.poll() is None if proc is not None else pid_alive(pid)

        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not alive():
                return
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            limit = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
            while time.monotonic() < limit and alive():
                time.sleep(0.05)

    # ------------------------------------------------------------------ status, list, extend
    def status(self, project_ref: int | str | Path, *, kernels: bool = True) -> dict[str, Any]:
        """The project's newest server (running or not); `state` is "none" when it never had one."""
        project = self._project(project_ref)
        with self.store.session() as s:
            row = s.scalar(select(ServerRow).where(ServerRow.project_id == project["id"])
                           .order_by(ServerRow.id.desc()).limit(1))
            if row is None:
                return {"id": None, "project": self._brief(project), "state": "none", "ui": None,
                        "config": None, "port": None, "base_url": None, "url": None, "token": None,
                        "pid": None, "started": None, "deadline": None, "seconds_left": None,
                        "no_limit": None, "stopped": None, "stop_reason": None, "log_path": None,
                        "kernels": []}
            out = self.server_dict(row, self._brief(project))
            running = row.state == "running"
        out["kernels"] = self._kernels(row) if kernels and running else []
        return out

    def _kernels(self, row: ServerRow) -> list[dict[str, Any]]:
        """The server's kernels with the notebook each serves (from /api/kernels and /api/sessions)."""
        headers = {"Authorization": f"token {row.token}"}
        try:
            with httpx.Client(base_url=row.url, headers=headers, timeout=3.0) as http:
                kernels = http.get("/api/kernels").json()
                sessions = http.get("/api/sessions").json()
                specs = http.get("/api/kernelspecs").json().get("kernelspecs", {}) if kernels else {}
        except (httpx.HTTPError, ValueError, AttributeError):
            return []
        by_kernel = {}
        for sess in sessions if isinstance(sessions, list) else []:
            kid = (sess.get("kernel") or {}).get("id")
            if kid:
                by_kernel[kid] = sess
        out = []
        from labwork.notebooks.recent import spark_ui_by_kernel
        ui = spark_ui_by_kernel(self.ctx.store, [k.get("id") for k in kernels if isinstance(k, dict)]
                                if isinstance(kernels, list) else [])
        for k in kernels if isinstance(kernels, list) else []:
            sess = by_kernel.get(k.get("id"), {})
            spec = (specs.get(k.get("name")) or {}).get("spec") or {}
            out.append({"id": k.get("id"), "name": k.get("name"), "display_name": spec.get("display_name"),
                        "state": k.get("execution_state"),
                        "last_activity": k.get("last_activity"), "connections": k.get("connections"),
                        "notebook": sess.get("path"), "session_id": sess.get("id"),
                        "session_type": sess.get("type"), "spark_ui_url": ui.get(k.get("id"))})
        return out

    def list(self, *, include_stopped: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        """Servers of every project: running ones, or the newest `limit` of all with `include_stopped`."""
        with self.store.session() as s:
            q = select(ServerRow).order_by(ServerRow.id.desc()).limit(limit)
            if not include_stopped:
                q = q.where(ServerRow.state.in_(ACTIVE))
            rows = s.scalars(q).all()
            projects = self._projects_by_id(s, {r.project_id for r in rows})
            return [self.server_dict(r, projects.get(r.project_id)) for r in rows]

    def history(self, project_ref: int | str | Path) -> list[dict[str, Any]]:
        """The project's servers, newest first, with whether their log is still kept."""
        project = self._project(project_ref)
        with self.store.session() as s:
            rows = s.scalars(select(ServerRow).where(ServerRow.project_id == project["id"])
                             .order_by(ServerRow.id.desc()).limit(100)).all()
            out = []
            for r in rows:
                d = self.server_dict(r, self._brief(project))
                d["log_kept"] = bool(r.log_path) and Path(r.log_path).is_file()
                out.append(d)
            return out

    def extend(self, project_ref: int | str | Path, hours: float | None) -> dict[str, Any]:
        """Add `hours` to the deadline (from now if it has passed or there was none); None = no limit."""
        if hours is not None:
            try:
                hours = float(hours)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"hours must be a number, got {hours!r}", where="extend") from exc
            if not hours > 0 or hours > MAX_HOURS:
                raise ConfigError(f"hours must be more than 0 and at most {MAX_HOURS}, got {hours:g}",
                                  where="extend", hint="use --no-limit for a server that never stops",
                                  hints=NO_LIMIT_HINTS)
        project = self._project(project_ref)
        with self._lock(project["id"]):
            with self.store.session() as s:
                row = self._active_row(s, project["id"])
                if row is None or row.state != "running":
                    raise NotFound(f"no Jupyter server runs for project '{project['name']}'",
                                   hint="start one with 'labwork notebook start'", hints=START_HINTS)
                now = _now()
                if hours is None:
                    row.deadline = None
                    text = "time limit removed: the server runs until it is stopped"
                else:
                    base = max(_aware(row.deadline) or now, now)
                    new = base + timedelta(hours=hours)
                    if new - now > timedelta(hours=MAX_HOURS):
                        raise ConfigError(f"the deadline would be more than {MAX_HOURS} hours away",
                                          where="extend", hint="use --no-limit instead", hints=NO_LIMIT_HINTS)
                    row.deadline = new
                    text = f"deadline extended by {hours:g} h to {_iso(new)}"
                path = row.log_path
            self._note(path, text)
        return self.status(project["id"])

    # ------------------------------------------------------------------ logs
    def _server_row(self, s, project: dict[str, Any], server_id: int | None) -> ServerRow:
        if server_id is None:
            row = s.scalar(select(ServerRow).where(ServerRow.project_id == project["id"])
                           .order_by(ServerRow.id.desc()).limit(1))
            if row is None:
                raise NotFound(f"project '{project['name']}' has had no Jupyter server yet",
                               hint="start one with 'labwork notebook start'", hints=START_HINTS)
            return row
        row = s.get(ServerRow, int(server_id))
        if row is None or row.project_id != project["id"]:
            raise NotFound(f"no server {server_id} in project '{project['name']}'",
                           hint="'labwork notebook status' shows the current one",
                           hints={"dashboard": "the project's Jupyter page shows the current one"})
        return row

    def log_file(self, project_ref: int | str | Path, server_id: int | None = None) -> Path:
        """The path of a server's log (the newest server's by default)."""
        project = self._project(project_ref)
        with self.store.session() as s:
            row = self._server_row(s, project, server_id)
            path = Path(row.log_path)
            sid = row.id
        if not path.is_file():
            raise NotFound(f"the log of server {sid} is no longer kept (the last "
                           f"{self.settings.logs_kept_per_project} per project are)", where=str(path))
        return path

    def logs(self, project_ref: int | str | Path, server_id: int | None = None, offset: int = 0
             ) -> dict[str, Any]:
        """Log text from byte `offset`; call again with the returned `offset` to follow."""
        project = self._project(project_ref)
        with self.store.session() as s:
            row = self._server_row(s, project, server_id)
            sid, state = row.id, row.state
        path = self.log_file(project["id"], sid)
        size = path.stat().st_size
        offset = max(0, int(offset))
        if offset > size:  # the file was replaced: start over
            offset = 0
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(LOG_CHUNK)
        if len(data) == LOG_CHUNK and b"\n" in data:  # whole lines only, so UTF-8 never splits
            data = data[:data.rindex(b"\n") + 1]
        nxt = offset + len(data)
        return {"server_id": sid, "state": state, "active": state in ACTIVE, "path": str(path),
                "text": data.decode("utf-8", errors="replace"), "offset": nxt, "size": size,
                "eof": nxt >= size}

    # ------------------------------------------------------------------ recent, open
    def recent(self, project_ref: int | str | Path) -> list[dict[str, Any]]:
        return recent_notebooks(self.store, self._project(project_ref))

    def open_notebook(self, project_ref: int | str | Path, notebook: str) -> dict[str, Any]:
        """The notebook's URL on the project's server, started with the configuration the notebook
        last ran with when none runs (the running one is reused otherwise)."""
        project = self._project(project_ref)
        root = Path(project["path"]).resolve()
        rel = notebook_in_project(root, notebook).relative_to(root).as_posix()
        wanted = last_config(self.store, project, rel)
        note = None
        started = False
        with self.store.session() as s:
            active = self._active_row(s, project["id"])
        if active is None or not self._alive(active):
            try:
                self.start(project["id"], wanted)
                started = True
            except Conflict:
                pass  # started meanwhile by someone else: reuse it
        status = self.status(project["id"], kernels=False)
        if status["state"] != "running":
            raise Unavailable(f"the project's server is {status['state']}", hint="try again in a moment")
        if wanted is not None and not parse_config(status["config"]).same_runtime(parse_config(wanted)):
            note = ("the running server's configuration differs from the one this notebook last ran with; "
                    "stop the server and open the notebook again to use that one")
        with self.store.session() as s:
            row = s.get(ServerRow, status["id"])
            url = self.notebook_url(row, rel)
        return {"notebook": rel, "url": url, "started": started, "config": status["config"],
                "last_config": wanted, "note": note, "server": status}

    # ------------------------------------------------------------------ adoption and the loop
    def adopt(self) -> dict[str, list[int]]:
        """At start-up: re-adopt servers that still run and answer, mark dead ones stopped."""
        out: dict[str, list[int]] = {"adopted": [], "stopped": []}
        with self.store.session() as s:
            rows = s.scalars(select(ServerRow).where(ServerRow.state.in_(ACTIVE))).all()
        for row in rows:
            if row.pid and pid_alive(row.pid) and self._is_our_jupyter(row):
                answered = False
                for _ in range(3):
                    if self._answers(row):
                        answered = True
                        break
                    time.sleep(0.5)
                with self.store.session() as s:
                    r = s.get(ServerRow, row.id)
                    r.state = "running"
                self._note(row.log_path, f"re-adopted by the control plane (pid {os.getpid()})"
                           + ("" if answered else "; the server did not answer yet"))
                out["adopted"].append(row.id)
            else:
                when = None
                try:
                    when = datetime.fromtimestamp(Path(row.log_path).stat().st_mtime, UTC)
                except OSError:
                    pass
                self._mark_dead(row.id, "the server exited while the control plane was not running", when=when)
                out["stopped"].append(row.id)
        if out["adopted"] or out["stopped"]:
            log.info("servers adopted %s, marked stopped %s", out["adopted"], out["stopped"])
        return out

    @staticmethod
    def _is_our_jupyter(row: ServerRow) -> bool:
        """Guard against a reused pid: the process must be a Jupyter server on the recorded port."""
        try:
            import psutil
            cmdline = psutil.Process(row.pid).cmdline()
        except Exception:
            return False
        return f"--ServerApp.port={row.port}" in cmdline

    def check(self) -> None:
        """One pass of the loop: stop servers past their deadline, record ones that died."""
        for sid, proc in list(self._procs.items()):
            proc.poll()  # reap exited children
        with self.store.session() as s:
            rows = s.scalars(select(ServerRow).where(ServerRow.state == "running")).all()
            projects = self._projects_by_id(s, {r.project_id for r in rows})
        now = _now()
        for row in rows:
            lock = self._lock(row.project_id)
            if not lock.acquire(blocking=False):
                continue  # a start/stop of this project is under way
            try:
                with self.store.session() as s:
                    fresh = s.get(ServerRow, row.id)
                    if fresh is None or fresh.state != "running":
                        continue
                    deadline = _aware(fresh.deadline)
                if not self._alive(fresh):
                    self._mark_dead(fresh.id, "the server exited unexpectedly")
                elif deadline is not None and now >= deadline:
                    path = (projects.get(fresh.project_id) or {}).get("path", "")
                    self._stop_server(fresh.id, f"deadline reached ({_iso(deadline)})", path)
            except Exception:
                log.exception("checking server %s", row.id)
            finally:
                lock.release()

    def start_loop(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run_loop, name="labwork-deadlines", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        interval = max(0.2, float(self.settings.deadline_check_s))
        while not self._stopping.wait(interval):
            try:
                self.check()
            except Exception:
                log.exception("deadline check failed")

    def stop_loop(self) -> None:
        """Stop the deadline loop; the servers keep running (they outlive the control plane)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
