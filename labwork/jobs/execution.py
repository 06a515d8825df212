"""One job run as a process: the papermill runner (`labwork.jobs.runner`) in its own session,
watched by a thread that ends it on timeout or cancel and records how it ended.

A run's files live in `LABWORK_HOME/jobs/<project id>/<job id>/<run id>/` (0700): spec.json, the
output notebook (kept whether the run succeeds or fails), log.txt (the runner's and the kernel's
output, with labwork's own `[labwork]` lines) and result.json. Runners outlive the control plane,
like Jupyter servers: after a restart `adopt()` watches the ones still running and records the
outcome of those that ended meanwhile, so a restart never loses or repeats a run.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from labwork.jobs.containers import remove_left_containers
from labwork.jobs.tables import JobRunRow
from labwork.private import open_private, private_dir, user_umask, write_private
from labwork.settings import Settings
from labwork.store.db import Store
from labwork.units import format_seconds

log = logging.getLogger("labwork.jobs")

RUNNER = "labwork.jobs.runner"
POLL_S = 0.2


def now() -> datetime:
    return datetime.now(UTC)


def aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:  # SQLite gives naive datetimes back
        return dt.replace(tzinfo=UTC)
    return dt


def note(path: str | Path, text: str) -> None:
    """Append labwork's own line to a run's log."""
    try:
        with open_private(path, "a", encoding="utf-8") as fh:
            fh.write(f"[labwork] {now().isoformat(timespec='seconds')} {text}\n")
    except OSError:
        log.warning("cannot write to %s", path)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        import psutil
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - no such process, or no access
        return False


def _is_runner(pid: int, run_dir: str) -> bool:
    """Guard against a reused pid: the process must be our runner of this run."""
    try:
        import psutil
        cmd = psutil.Process(pid).cmdline()
    except Exception:  # noqa: BLE001
        return False
    return RUNNER in cmd and run_dir in cmd


def _kill_group(pid: int | None, sig: int) -> None:
    if not pid:
        return
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError, OSError):
        pass


@dataclass
class Launch:
    run_id: int
    run_dir: Path
    pid: int
    started: datetime
    timeout_s: float | None
    proc: subprocess.Popen | None = None
    stop_reason: str | None = None  # set by cancel / timeout
    stop_status: str = "failed"
    stop: threading.Event = field(default_factory=threading.Event)


class Executor:
    """Starts runner processes and records their ends; `finished(run_id)` is called after each."""

    def __init__(self, settings: Settings, store: Store, finished: Callable[[int], None]) -> None:
        self.settings = settings
        self.store = store
        self.finished = finished
        self._active: dict[int, Launch] = {}
        self._guard = threading.Lock()

    # -------------------------------------------------------------- paths
    def run_dir(self, project_id: int, job_id: int, run_id: int) -> Path:
        return self.settings.home / "jobs" / str(project_id) / str(job_id) / str(run_id)

    def active(self) -> list[int]:
        with self._guard:
            return list(self._active)

    # -------------------------------------------------------------- start
    def start(self, run_id: int, *, project_id: int, job_id: int, notebook: Path, root: Path,
              kernel_name: str, parameters: dict[str, Any], env: dict[str, str],
              timeout_s: float | None) -> None:
        """Start the runner of a queued run (its row becomes `running`); returns at once."""
        run_dir = private_dir(self.run_dir(project_id, job_id, run_id))
        kernel_id = f"job-{run_id}-{os.urandom(4).hex()}"
        output = run_dir / f"output-{notebook.name}"
        log_path = run_dir / "log.txt"
        spec = {"notebook_path": str(notebook), "output_path": str(output), "parameters": parameters,
                "kernel_name": kernel_name, "cwd": str(root), "kernel_id": kernel_id,
                "start_timeout": self.settings.jobs.kernel_start_timeout_s, "timeout_s": timeout_s}
        write_private(run_dir / "spec.json", json.dumps(spec))
        note(log_path, f"run {run_id}: {notebook.name} on kernel {kernel_name} with parameters "
                       f"{json.dumps(parameters)}")
        cmd = [sys.executable, "-m", RUNNER, str(run_dir)]
        started = now()
        try:
            with open_private(log_path, "ab") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        cwd=root, env=env, start_new_session=True, close_fds=True,
                                        umask=user_umask())
        except OSError as exc:
            self._record(run_id, status="failed", reason=f"could not start the job runner: {exc}",
                         started=started, log_path=log_path, output=output, kernel_id=kernel_id)
            self.finished(run_id)
            return
        with self.store.session() as s:
            row = s.get(JobRunRow, run_id)
            row.status, row.started_at, row.pid = "running", started, proc.pid
            row.kernel_id, row.output_path, row.log_path = kernel_id, str(output), str(log_path)
        launch = Launch(run_id, run_dir, proc.pid, started, timeout_s, proc=proc)
        self._watch(launch)

    def _watch(self, launch: Launch) -> None:
        with self._guard:
            self._active[launch.run_id] = launch
        threading.Thread(target=self._monitor, args=(launch,), name=f"labwork-job-run-{launch.run_id}",
                         daemon=True).start()

    # -------------------------------------------------------------- watching
    def _exited(self, launch: Launch, wait: float = 0.0) -> bool:
        """Whether the runner has ended, waiting up to `wait` seconds for it (woken by its exit)."""
        if launch.proc is not None:
            try:
                launch.proc.wait(timeout=wait) if wait else launch.proc.poll()
            except subprocess.TimeoutExpired:
                pass
            return launch.proc.poll() is not None
        if not pid_alive(launch.pid):
            return True
        time.sleep(wait)
        return not pid_alive(launch.pid)

    def _monitor(self, launch: Launch) -> None:
        try:
            while not self._exited(launch, POLL_S):
                if launch.timeout_s is not None and launch.stop_reason is None and \
                        (now() - launch.started).total_seconds() > launch.timeout_s:
                    launch.stop_reason = f"timed out after {format_seconds(launch.timeout_s)} (the job's timeout)"
                    self._end(launch)
                if launch.stop.is_set():  # a cancel
                    launch.stop.clear()
                    self._end(launch)
            self._conclude(launch)
        except Exception:  # noqa: BLE001 - a watcher must never die silently with a run 'running'
            log.exception("watching job run %s", launch.run_id)
            self._record(launch.run_id, status="failed", reason="labwork lost track of the run (see its log)")
            self.finished(launch.run_id)
        finally:
            with self._guard:
                self._active.pop(launch.run_id, None)

    def _kernel_pid(self, launch: Launch) -> int | None:
        try:
            return int((launch.run_dir / "kernel.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _end(self, launch: Launch) -> None:
        """End a run: its kernel first (papermill then saves the output notebook and reports the
        dead kernel), then the runner if it does not finish within the grace time."""
        note(launch.run_dir / "log.txt", f"ending the run: {launch.stop_reason}")
        kpid = self._kernel_pid(launch)
        if kpid and pid_alive(kpid):
            _kill_group(kpid, signal.SIGKILL)
        else:
            _kill_group(launch.pid, signal.SIGTERM)
        limit = time.monotonic() + self.settings.jobs.stop_grace_s
        while time.monotonic() < limit and not self._exited(launch):
            time.sleep(POLL_S)
        if not self._exited(launch):
            _kill_group(launch.pid, signal.SIGKILL)

    def _conclude(self, launch: Launch) -> None:
        code = launch.proc.wait() if launch.proc is not None else None
        kpid = self._kernel_pid(launch)
        if kpid and pid_alive(kpid):  # a runner that died leaves no orphan kernel behind
            _kill_group(kpid, signal.SIGKILL)
        remove_left_containers(launch.run_dir, note)
        result = _result(launch.run_dir)
        if launch.stop_reason is not None:
            status, reason = launch.stop_status, launch.stop_reason
        elif result is not None:
            status, reason = result["status"], result.get("reason")
        else:
            tail = _tail(launch.run_dir / "log.txt")
            status = "failed"
            reason = (f"the job runner ended without a result (exit code {code})" if code is not None
                      else "the job runner ended without a result") + (f": {tail}" if tail else "")
        exit_code = (result or {}).get("exit_code")
        if exit_code is None:
            exit_code = code
        note(launch.run_dir / "log.txt", f"run {launch.run_id} {status}" + (f": {reason}" if reason else ""))
        self._record(launch.run_id, status=status, reason=reason, exit_code=exit_code)
        self.finished(launch.run_id)

    def _record(self, run_id: int, *, status: str, reason: str | None, exit_code: int | None = None,
                started: datetime | None = None, log_path: Path | None = None, output: Path | None = None,
                kernel_id: str | None = None) -> None:
        with self.store.session() as s:
            row = s.get(JobRunRow, run_id)
            if row is None:
                return
            row.status, row.reason, row.ended_at = status, reason, now()
            if exit_code is not None:
                row.exit_code = exit_code
            if started is not None and row.started_at is None:
                row.started_at = started
            if log_path is not None:
                row.log_path = str(log_path)
            if output is not None:
                row.output_path = str(output)
            if kernel_id is not None:
                row.kernel_id = kernel_id
        if row.output_path and Path(row.output_path).exists():
            os.chmod(row.output_path, 0o600)

    # -------------------------------------------------------------- cancel, adopt, stop
    def cancel(self, run_id: int, reason: str = "cancelled by the user") -> bool:
        """Ask a running run to end (its status becomes `cancelled`); False when it is not running here."""
        with self._guard:
            launch = self._active.get(run_id)
        if launch is None:
            return False
        if launch.stop_reason is None:
            launch.stop_reason, launch.stop_status = reason, "cancelled"
            launch.stop.set()
        return True

    def adopt(self) -> dict[str, list[Any]]:
        """At start-up: watch runners a previous control plane left running; record the others and
        remove the containers their Docker kernels left ("containers": the short ids removed)."""
        out: dict[str, list[Any]] = {"adopted": [], "ended": [], "containers": []}
        with self.store.session() as s:
            rows = s.scalars(select(JobRunRow).where(JobRunRow.status.in_(("starting", "running")))).all()
        for row in rows:
            if row.status == "starting":  # the control plane stopped between claiming and starting it
                self._record(row.id, status="failed", reason="the control plane stopped while the run was starting")
                out["ended"].append(row.id)
                self.finished(row.id)
                continue
            run_dir = Path(row.log_path).parent if row.log_path else None
            timeout = _timeout_of(run_dir)
            if run_dir is not None and row.pid and pid_alive(row.pid) and _is_runner(row.pid, str(run_dir)):
                self._watch(Launch(row.id, run_dir, row.pid, aware(row.started_at) or now(), timeout))
                note(run_dir / "log.txt", f"re-adopted by the control plane (pid {os.getpid()})")
                out["adopted"].append(row.id)
                continue
            result = _result(run_dir) if run_dir else None
            if run_dir is not None:
                note(run_dir / "log.txt", "the run ended while the control plane was not running: "
                     + (result["status"] if result else "no result"))
                out["containers"] += remove_left_containers(run_dir, note)  # a killed runner's kernel
            if result is not None:
                self._record(row.id, status=result["status"], reason=result.get("reason"),
                             exit_code=result.get("exit_code"))
            else:
                self._record(row.id, status="failed",
                             reason="the job runner was gone when the control plane came back (no result)")
            out["ended"].append(row.id)
            self.finished(row.id)
        return out


def _timeout_of(run_dir: Path | None) -> float | None:
    try:
        return json.loads((run_dir / "spec.json").read_text()).get("timeout_s") if run_dir else None
    except (OSError, ValueError):
        return None


def _result(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / "result.json").read_text())
        return data if isinstance(data, dict) and data.get("status") in ("completed", "failed") else None
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    keep = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("[labwork]")]
    return " | ".join(keep[-lines:])[:1000]
