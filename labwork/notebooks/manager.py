"""The notebook-server manager: one Jupyter server per user and project, with a deadline.

Every method that names a project also takes `user` (a `UserRef`): whose server it is. A user's
server is started with base_url /user/<name>/<project>/, where the control plane proxies it
(labwork/server/user_proxy.py); `user=None` is a server labwork starts for itself (no base_url,
not proxied). Who may act on whose server is the routes' decision (labwork/auth/server_access.py).

Split the way JupyterHub splits its Hub from its Spawner: this module keeps the rows, the per-project
locks, the deadlines, the logs and opening notebooks; the process work is a `ServerProcess`
(labwork/notebooks/spawner.py; `LocalProcess` today) and every talk with a server goes through
`JupyterApi` (labwork/notebooks/jupyter_api.py).

Servers are started detached so they outlive the control plane; their output goes to
`LABWORK_HOME/logs/servers/<project_id>/<server_id>.log`, which also receives labwork's own lines
(start, deadline, extension, stop and its reason) and is kept after the server stops (the last
`settings.logs_kept_per_project` per project). A background thread checks deadlines and liveness
every `settings.deadline_check_s`, and at start-up `adopt()` takes over servers a previous control
plane left running: both are `ServerWatch` (labwork/notebooks/watch.py), which the manager inherits.

Public methods return the JSON of the models in labwork/notebooks/models.py (docs/notebooks.md).
"""
from __future__ import annotations

import asyncio
import secrets
import threading
from datetime import datetime, timedelta
from pathlib import Path
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from labwork import envvars
from labwork.auth.users import UserRef
from labwork.errors import ConfigError, NotFound, Unavailable
from labwork.kernels.containers import PROJECT_LABEL, SERVER_LABEL, project_daemons, remove_labelled
from labwork.units import format_seconds
from labwork.notebooks.config import MAX_HOURS, ServerConfig, parse_config
from labwork.notebooks.contracts import ProjectSessions
from labwork.notebooks.idle import IdleWatch, culling_options
from labwork.notebooks.jupyter_api import JupyterApi
from labwork.notebooks.launch import jupyter_command, refuse_second, server_environment
from labwork.notebooks.lifecycle import push_deadline, save_before_stop
from labwork.notebooks.models import KernelInfo, LogChunk, ServerHistoryEntry, ServerStatus, ServerSummary
from labwork.notebooks.opening import open_notebook
from labwork.notebooks.recent import recent_notebooks
from labwork.notebooks.rows import (ACTIVE, START_HINTS, aware, brief, iso, last_meaningful_line,
                                    of_user, projects_by_id, prune_logs, read_chunk, row_fields,
                                    server_prefix, server_row, user_names, whose)
from labwork.notebooks.rows import now as _now
from labwork.notebooks.kernel_ends import kernel_ends_file, kernels_with_ends, recent_ends
from labwork.notebooks.spawner import UNKNOWN_EXIT, LaunchSpec, LocalProcess, StartFailed, write_note
from labwork.notebooks.watch import ServerWatch
from labwork.private import user_umask
from labwork.processes import port_free, tail
from labwork.project.files import load_project
from labwork.project.registry import get_project_row
from labwork.settings import Settings
from labwork.store.db import Store
from labwork.store.tables import ServerRow

FIRST_PORT = 8888
# The dashboard's phrasing of the hints below (the CLI's names its commands and flags).
NO_LIMIT_HINTS = {"dashboard": "for a server that never stops, stop it and start it again with 'no limit' ticked"}


class ServerManager(ServerWatch):
    """Starts, watches, extends and stops the projects' Jupyter servers."""

    def __init__(self, settings: Settings, store: Store, *, url: str = "",
                 project_sessions: ProjectSessions | None = None,
                 kernel_token: Callable[[str, UserRef | None], str | None] | None = None) -> None:
        """`url` is the control plane's address (kernels report back to it); `project_sessions`
        deletes a project's Spark sessions when its server stops (the gateway, when there is one);
        `kernel_token(name, user)` makes the personal token a server's kernels get as LABWORK_TOKEN
        (labwork.auth.accounts.Accounts.server_token)."""
        self.settings = settings
        self.store = store
        self.url = url
        self.project_sessions = project_sessions
        self.kernel_token = kernel_token
        self._guard = threading.Lock()
        self._locks: dict[tuple[int, int | None], threading.RLock] = {}
        self._port_lock = threading.Lock()
        self._procs: dict[int, LocalProcess] = {}  # servers this process started or adopted
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the app's loop, for async hooks
        self.idle = IdleWatch(settings.idle, self._note,  # idle stops and busy kernels (notebooks/idle.py)
                              warn_before_s=tuple(settings.warn_before_s))

    # ------------------------------------------------------------------ helpers
    def _lock(self, project_id: int, user_id: int | None = None) -> threading.RLock:
        """The lock of one user's server of a project (starts, stops and extends take it)."""
        with self._guard:
            return self._locks.setdefault((project_id, user_id), threading.RLock())

    def _project(self, ref: int | str | Path, *, register: bool = False) -> dict[str, Any]:
        """Only starting a server registers an unregistered folder (reads never do)."""
        return get_project_row(self.store, ref, register=register)

    def _log_path(self, project_id: int, server_id: int) -> Path:
        return self.settings.logs_dir / "servers" / str(project_id) / f"{server_id}.log"

    @staticmethod
    def _note(path: str | Path, text: str) -> None:
        """Append labwork's own line to a server log (it shows in `logs`)."""
        write_note(path, text)

    def _process(self, row: ServerRow) -> LocalProcess:
        """The server's process: the one this control plane started, or one re-adopted from the row."""
        proc = self._procs.get(row.id)
        if proc is None:
            proc = LocalProcess()
            proc.load_state({"pid": row.pid, "port": row.port})
        return proc

    def _active_row(self, s, project_id: int, user_id: int | None = None) -> ServerRow | None:
        return s.scalar(select(ServerRow).where(ServerRow.project_id == project_id, of_user(user_id),
                                                ServerRow.state.in_(ACTIVE))
                        .order_by(ServerRow.id.desc()).limit(1))

    def is_serving(self, project_id: int, user_id: int | None) -> bool:
        """Whether the user has a starting or running server of the project whose process lives."""
        with self.store.session() as s:
            row = self._active_row(s, project_id, user_id)
        return row is not None and self._alive(row)

    def _alive(self, row: ServerRow) -> bool:
        return bool(row.pid) and self._process(row).poll() is None

    def _exit_code(self, server_id: int, wait: float = 0.0) -> int | None:
        """The exit code of a server this process started (None when unknown)."""
        proc = self._procs.get(server_id)
        if proc is None:
            return None
        code = proc.wait(wait) if wait else proc.poll()
        return None if code == UNKNOWN_EXIT else code

    @staticmethod
    def _answers(row: ServerRow, timeout: float = 2.0) -> bool:
        with JupyterApi(row.url, row.token, timeout=timeout) as api:
            return api.answers()

    @staticmethod
    def _summary(row: ServerRow, project: dict[str, Any] | None = None,
                 users: dict[int, str] | None = None) -> dict[str, Any]:
        """The row as `ServerSummary`'s JSON (no kernels)."""
        return ServerSummary(**row_fields(row, project, users)).model_dump(mode="json")

    # ------------------------------------------------------------------ start
    def _pick_port(self, s, skip: set[int] = frozenset(), mine: int | None = None) -> int:
        """The first port from FIRST_PORT that is free now, not reserved by another active server
        (`mine`, the server being started, does not count) and not in `skip` (already tried)."""
        rows = s.execute(select(ServerRow.id, ServerRow.port).where(ServerRow.state.in_(ACTIVE))).all()
        reserved = {p for i, p in rows if p and i != mine} | set(skip)
        for port in range(FIRST_PORT, FIRST_PORT + 500):
            if port not in reserved and port_free("127.0.0.1", port):
                return port
        raise Unavailable(f"no free port in {FIRST_PORT}..{FIRST_PORT + 499}", where="127.0.0.1")

    def _port_picker(self, server_id: int, first: int):
        """`LocalProcess`'s picker: the port reserved in the row first, then (when another program
        took it meanwhile) the next free one no other active server has reserved."""
        def pick(tried: set[int]) -> int:
            if not tried:
                return first
            with self._port_lock, self.store.session() as s:
                return self._pick_port(s, tried, mine=server_id)
        return pick

    def _spawned(self, server_id: int, base_path: str):
        """Record the pid and port in the row as soon as the process runs (adoption needs them)."""
        def record(pid: int, port: int) -> None:
            with self.store.session() as s:
                row = s.get(ServerRow, server_id)
                row.pid, row.port, row.url = pid, port, f"http://127.0.0.1:{port}{base_path}"
        return record

    def _command(self, ui: str, port: int, root: Path, base_path: str = "") -> list[str]:
        return jupyter_command(ui, port, root, base_path) + culling_options(self.settings.idle)


    def new_process(self, server_id: int, first_port: int) -> LocalProcess:
        """The process a new server runs as (the seam where another kind would be chosen)."""
        return LocalProcess(self._port_picker(server_id, first_port))

    def start(self, project_ref: int | str | Path, config: ServerConfig | dict[str, Any] | None = None,
              *, user: UserRef | None = None) -> dict[str, Any]:
        """Start `user`'s server of the project and wait until it answers; the `status` dict of
        it. Its kernels get `user`'s personal token."""
        cfg = parse_config(config)
        if "hours" not in cfg.model_fields_set:
            cfg = cfg.model_copy(update={"hours": self.settings.default_hours})
        project = self._project(project_ref, register=True)
        loaded = load_project(project["path"])  # a broken labwork.toml stops here, clearly
        root = loaded.root
        uid = user.id if user is not None else None
        with self._lock(project["id"], uid):
            with self.store.session() as s:
                active = self._active_row(s, project["id"], uid)
                base_path = server_prefix(s, project, user)
            if active is not None:
                if self._alive(active):
                    refuse_second(active, cfg, loaded.name)
                self._mark_dead(active.id, "the server process was gone when a new start was asked")
            token = secrets.token_urlsafe(32)
            now = _now()
            with self._port_lock, self.store.session() as s:
                port = self._pick_port(s)
                row = ServerRow(project_id=project["id"], user_id=uid, state="starting", ui=cfg.ui,
                                config=cfg.model_dump(mode="json"), port=port,
                                url=f"http://127.0.0.1:{port}{base_path}",
                                token=token, log_path="", started_at=now,
                                deadline=now + timedelta(hours=cfg.hours) if cfg.hours else None)
                s.add(row)
                s.flush()
                row.log_path = str(self._log_path(project["id"], row.id))
                server_id, log_path = row.id, Path(row.log_path)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            ui_name = "JupyterLab" if cfg.ui == "lab" else "Jupyter Notebook (classic UI)"
            limit = f"deadline {iso(now + timedelta(hours=cfg.hours))} ({cfg.hours:g} h)" if cfg.hours \
                else "no time limit"
            limit += f"; stops when idle for {format_seconds(cfg.idle)}" if cfg.idle else ""
            self._note(log_path, f"starting {ui_name} for project '{loaded.name}' ({root}) on port {port}; "
                                 f"{cfg.kind} configuration; {limit}")
            env = server_environment(home=self.settings.home, url=self.url, root=root, name=loaded.name,
                                     server_id=server_id, config=cfg, token=token,
                                     kernel_ends=kernel_ends_file(log_path))
            personal = self.kernel_token(f"server {server_id}", user) if self.kernel_token is not None else None
            if personal:  # in the environment only (never a file, never the command line)
                env[envvars.TOKEN] = personal
            spec = LaunchSpec(command=lambda p: self._command(cfg.ui, p, root, base_path), cwd=root, env=env,
                              log_path=log_path, token=token, umask=user_umask(),  # the user's modes
                              timeout=self.settings.jupyter_start_timeout_s,
                              on_spawn=self._spawned(server_id, base_path), base_path=base_path)
            proc = self.new_process(server_id, port)
            self._procs[server_id] = proc
            try:
                state = proc.start(spec)
            except StartFailed as exc:
                self._start_failed(server_id, exc, log_path)
            with self.store.session() as s:
                row = s.get(ServerRow, server_id)
                row.pid, row.port, row.url = state.pid, state.port, state.url
                row.state = "running"
            self._note(log_path, f"server running at {state.url} (pid {state.pid})")
            push_deadline(self.store, server_id, self.settings)  # JupyterLab shows the time left
            prune_logs(self.store, project["id"], self.settings.logs_kept_per_project, uid)
        return self.status(project["id"], kernels=False, user=user)  # just started: no kernels yet

    def _start_failed(self, server_id: int, exc: StartFailed, log_path: Path) -> None:
        """Record a start that failed and raise it with the last lines of the log."""
        if exc.problem.startswith("could not run Jupyter"):
            self._finish(server_id, "failed", exc.problem)
            raise Unavailable(exc.problem, where=exc.where) from exc
        last = "\n".join(tail(log_path, 15))
        self._finish(server_id, "failed", f"the Jupyter server did not start: {exc.problem}")
        raise Unavailable(f"the Jupyter server did not start: {exc.problem}\n--- last lines of its log ---\n{last}",
                          where=str(log_path), details={"log": last},
                          hint=f"see the whole log with 'labwork notebook logs --server {server_id}'",
                          hints={"dashboard": "see the whole log with Server logs"}) from exc

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
        self.idle.forget(server_id)

    def _mark_dead(self, server_id: int, why: str, *, when: datetime | None = None) -> None:
        with self.store.session() as s:
            row = s.get(ServerRow, server_id)
            path = row.log_path
            project_path = (projects_by_id(s, {row.project_id}).get(row.project_id) or {}).get("path")
        if project_path:  # its docker kernels' containers outlive a server killed hard
            remove_labelled(project_daemons(project_path), {SERVER_LABEL: str(server_id), PROJECT_LABEL: project_path},
                            lambda text: self._note(path, text), "the dead server left")
        code = self._exit_code(server_id, wait=5.0)
        exit_text = f"exit code {code}" if code is not None else "exit code unknown"
        last = last_meaningful_line(path)
        reason = f"{why} ({exit_text})" + (f"; last log line: {last}" if last else "")
        self._finish(server_id, "stopped", reason, when=when)

    # ------------------------------------------------------------------ stop
    def stop(self, project_ref: int | str | Path, reason: str = "stopped by the user", *,
             user: UserRef | None = None) -> dict[str, Any]:
        """Shut `user`'s server of the project down cleanly (kernels too) and record why."""
        project = self._project(project_ref)
        uid = user.id if user is not None else None
        with self._lock(project["id"], uid):
            with self.store.session() as s:
                row = self._active_row(s, project["id"], uid)
                server_id = row.id if row else None
            if server_id is None:
                raise NotFound(f"no Jupyter server runs for project '{project['name']}'{whose(user)}",
                               hint="start one with 'labwork notebook start'", hints=START_HINTS)
            self._stop_server(server_id, reason, project["path"])
        return self.status(project["id"], user=user)

    def _stop_server(self, server_id: int, reason: str, project_path: str) -> None:
        with self.store.session() as s:
            row = s.get(ServerRow, server_id)
            row.state = "stopping"
            proc, base, token, log_path = self._process(row), row.url, row.token, row.log_path
            owner = user_names(s, {row.user_id}).get(row.user_id) if row.user_id is not None else None
        self._note(log_path, f"stopping the server: {reason}")
        save_before_stop(self.store, server_id, reason, self.settings, lambda text: self._note(log_path, text))
        self._gateway_cleanup(project_path, log_path, owner)

        def ask() -> None:  # Jupyter's clean shutdown: its kernels are shut down too
            with JupyterApi(base, token) as api:
                problem = api.shutdown(timeout=10)
            if problem:
                self._note(log_path, f"clean shutdown request failed: {problem}")

        if proc.pid and proc.poll() is None:
            how = "shut down cleanly" if proc.stop(20.0, ask=ask) \
                else "terminated (it did not shut down within 20 s)"
        else:
            how = "it was no longer running"
        code = self._exit_code(server_id, wait=5.0)
        if code is not None:
            how += f", exit code {code}"
        self._finish(server_id, "stopped", reason, how=how)

    def _gateway_cleanup(self, project_path: str, log_path: str, user: str | None = None) -> None:
        """Delete the Spark sessions the project's kernels made (on the control plane's gateway):
        `user`'s only, for a user's server (the other members' sessions stay)."""
        if self.project_sessions is None:
            return  # a control plane without the gateway part
        try:
            deleted = self.project_sessions.delete_project_sessions_sync(project_path, user=user)
        except Exception as exc:  # the gateway's trouble never blocks a stop
            self._note(log_path, f"could not delete the project's Spark sessions: {exc!r}")
            return
        if deleted:
            whose = f"of {user} in the project" if user else "of the project"
            self._note(log_path, f"deleted {deleted} Spark session(s) {whose} on the gateway")

    # ------------------------------------------------------------------ status, list, extend
    def status(self, project_ref: int | str | Path, *, kernels: bool = True,
               user: UserRef | None = None) -> dict[str, Any]:
        """`user`'s newest server of the project (running or not); `state` is "none" when they
        never had one."""
        project = self._project(project_ref)
        uid = user.id if user is not None else None
        with self.store.session() as s:
            row = s.scalar(select(ServerRow).where(ServerRow.project_id == project["id"], of_user(uid))
                           .order_by(ServerRow.id.desc()).limit(1))
            if row is None:
                none = dict.fromkeys(ServerSummary.model_fields, None)
                return ServerStatus(**none | {"project": brief(project), "state": "none",
                                              "user": user.name if user else None}).model_dump(mode="json")
            fields = row_fields(row, brief(project), {uid: user.name} if user else None)
            fields["kernel_ends"] = recent_ends(row.log_path)  # why its kernels died
            running = row.state == "running"
        found = self._kernels(row) if kernels and running else []
        idle = self.idle.snapshot(row.id) if running else None
        return ServerStatus(**fields, kernels=found, idle=idle).model_dump(mode="json")

    def _kernels(self, row: ServerRow) -> list[KernelInfo]:
        """The server's kernels with the notebook each serves (from /api/kernels and /api/sessions)."""
        with JupyterApi(row.url, row.token) as api:
            kernels = api.kernels()
            sessions = api.sessions() if kernels else []
            specs = api.kernelspecs() if kernels else {}
        by_kernel = {}
        for sess in sessions:
            kid = (sess.get("kernel") or {}).get("id")
            if kid:
                by_kernel[kid] = sess
        from labwork.notebooks.recent import spark_ui_by_kernel
        ui = spark_ui_by_kernel(self.store, [k.get("id") for k in kernels])
        out = []
        for k in kernels:
            sess = by_kernel.get(k.get("id"), {})
            spec = (specs.get(k.get("name")) or {}).get("spec") or {}
            out.append(KernelInfo(id=k.get("id"), name=k.get("name"), display_name=spec.get("display_name"),
                                  state=k.get("execution_state"), last_activity=k.get("last_activity"),
                                  connections=k.get("connections"), notebook=sess.get("path"),
                                  session_id=sess.get("id"), session_type=sess.get("type"),
                                  spark_ui_url=ui.get(k.get("id"))))
        return kernels_with_ends(out, row.log_path)

    def list(self, *, include_stopped: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        """Servers of every project: running ones, or the newest `limit` of all with `include_stopped`."""
        with self.store.session() as s:
            q = select(ServerRow).order_by(ServerRow.id.desc()).limit(limit)
            if not include_stopped:
                q = q.where(ServerRow.state.in_(ACTIVE))
            rows = s.scalars(q).all()
            projects = projects_by_id(s, {r.project_id for r in rows})
            users = user_names(s, {r.user_id for r in rows})
            return [self._summary(r, projects.get(r.project_id), users) for r in rows]

    def history(self, project_ref: int | str | Path, *, user: UserRef | None = None) -> list[dict[str, Any]]:
        """`user`'s servers of the project, newest first, with whether their log is still kept."""
        project = self._project(project_ref)
        uid = user.id if user is not None else None
        with self.store.session() as s:
            rows = s.scalars(select(ServerRow).where(ServerRow.project_id == project["id"], of_user(uid))
                             .order_by(ServerRow.id.desc()).limit(100)).all()
            out = []
            names = {uid: user.name} if user else None
            for r in rows:
                kept = bool(r.log_path) and Path(r.log_path).is_file()
                out.append(ServerHistoryEntry(**row_fields(r, brief(project), names), log_kept=kept)
                           .model_dump(mode="json"))
            return out

    def extend(self, project_ref: int | str | Path, hours: float | None, *,
               user: UserRef | None = None) -> dict[str, Any]:
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
        uid = user.id if user is not None else None
        with self._lock(project["id"], uid):
            with self.store.session() as s:
                row = self._active_row(s, project["id"], uid)
                if row is None or row.state != "running":
                    raise NotFound(f"no Jupyter server runs for project '{project['name']}'{whose(user)}",
                                   hint="start one with 'labwork notebook start'", hints=START_HINTS)
                now = _now()
                if hours is None:
                    row.deadline = None
                    text = "time limit removed: the server runs until it is stopped"
                else:
                    base = max(aware(row.deadline) or now, now)
                    new = base + timedelta(hours=hours)
                    if new - now > timedelta(hours=MAX_HOURS):
                        raise ConfigError(f"the deadline would be more than {MAX_HOURS} hours away",
                                          where="extend", hint="use --no-limit instead", hints=NO_LIMIT_HINTS)
                    row.deadline = new
                    text = f"deadline extended by {hours:g} h to {iso(new)}"
                path, server_id = row.log_path, row.id
            self._note(path, text)
            push_deadline(self.store, server_id, self.settings)
        return self.status(project["id"], user=user)

    # ------------------------------------------------------------------ logs
    def log_file(self, project_ref: int | str | Path, server_id: int | None = None, *,
                 user: UserRef | None = None) -> Path:
        """The path of one of `user`'s servers' log (their newest server's by default)."""
        project = self._project(project_ref)
        with self.store.session() as s:
            row = server_row(s, project, server_id, user.id if user is not None else None)
            path = Path(row.log_path)
            sid = row.id
        if not path.is_file():
            raise NotFound(f"the log of server {sid} is no longer kept (the last "
                           f"{self.settings.logs_kept_per_project} per project are)", where=str(path))
        return path

    def logs(self, project_ref: int | str | Path, server_id: int | None = None, offset: int = 0, *,
             user: UserRef | None = None) -> dict[str, Any]:
        """Log text from byte `offset`; call again with the returned `offset` to follow."""
        project = self._project(project_ref)
        with self.store.session() as s:
            row = server_row(s, project, server_id, user.id if user is not None else None)
            sid, state = row.id, row.state
        path = self.log_file(project["id"], sid, user=user)
        text, nxt, size = read_chunk(path, offset)
        return LogChunk(server_id=sid, state=state, active=state in ACTIVE, path=str(path), text=text,
                        offset=nxt, size=size, eof=nxt >= size).model_dump(mode="json")

    # ------------------------------------------------------------------ recent, open
    def recent(self, project_ref: int | str | Path, *, user: UserRef | None = None) -> list[dict[str, Any]]:
        """The project's recent notebooks with their configurations: those `user` ran, when given."""
        return recent_notebooks(self.store, self._project(project_ref), user_id=user.id if user else None)

    def open_notebook(self, project_ref: int | str | Path, notebook: str, *,
                      user: UserRef | None = None) -> dict[str, Any]:
        """The notebook's URL on `user`'s server of the project, started with the configuration
        the notebook last ran with when none runs (the running one is reused otherwise)."""
        return open_notebook(self, self._project(project_ref), notebook, user)
