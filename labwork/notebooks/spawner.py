"""Where a project's Jupyter server runs: the process contract and its local implementation.

Modelled on JupyterHub's `Spawner`: a small contract that does process work only — `start`,
`poll`, `stop`, and `get_state`/`load_state` so a control plane that restarts can re-adopt a server
the previous one started. Rows, locks, deadlines and logs stay in the manager
(labwork/notebooks/manager.py). `LocalProcess` is the one implementation today; remote kinds
(a container, a host over ssh) become other implementations, not branches in the manager.
"""
from __future__ import annotations

import abc
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labwork.errors import Unavailable
from labwork.notebooks.jupyter_api import JupyterApi
from labwork.processes import children, free_port, pid_alive, port_free, tail, terminate, terminate_tree

HOST = "127.0.0.1"
PORT_ATTEMPTS = 3  # a port taken between the check and Jupyter's bind is retried this often
# What Jupyter prints when its port is taken and port_retries=0 forbids another one.
PORT_TAKEN_MARKS = ("is already in use", "no available port could be found")


def write_note(path: str | Path, text: str) -> None:
    """Append labwork's own line to a server log (it shows in `labwork notebook logs`)."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"[labwork] {datetime.now(UTC).isoformat(timespec='seconds')} {text}\n")
    except OSError:
        pass


@dataclass(frozen=True)
class LaunchSpec:
    """What a server is started with: the command for a port, where it runs, its environment, and
    the log that receives its output (and labwork's notes about it)."""
    command: Callable[[int], list[str]]
    cwd: Path
    env: dict[str, str]
    log_path: Path
    token: str
    umask: int | None = None
    timeout: float = 120.0
    on_spawn: Callable[[int, int], None] | None = None  # (pid, port) as soon as the process runs
    base_path: str = ""  # the server's base_url without its last "/" ("/user/alice/p"; "" = the root)


@dataclass(frozen=True)
class ProcessState:
    """A started server: its pid and the port it listens on (the address follows from them)."""
    pid: int
    port: int
    host: str = HOST
    extra: dict[str, Any] = field(default_factory=dict)
    base_path: str = ""  # as in `LaunchSpec`

    @property
    def url(self) -> str:
        """The server's base address (its base_url included): what its REST API hangs off."""
        return f"http://{self.host}:{self.port}{self.base_path}"


class StartFailed(Unavailable):
    """The server did not come up; `problem` says how (exited with a code, did not answer)."""

    def __init__(self, problem: str, **kwargs: Any) -> None:
        super().__init__(problem, **kwargs)
        self.problem = problem


class ServerProcess(abc.ABC):
    """The contract of a server's process. One object per server; it may outlive the control
    plane only as its `get_state()`, which `load_state()` turns back into a usable object."""

    @abc.abstractmethod
    def start(self, spec: LaunchSpec) -> ProcessState:
        """Start the server and return once it answers its REST API (or raise `StartFailed`)."""

    @abc.abstractmethod
    def poll(self) -> int | None:
        """None while it runs; its exit code once it has exited (`UNKNOWN_EXIT` when not knowable)."""

    @abc.abstractmethod
    def stop(self, grace: float, *, ask: Callable[[], None] | None = None) -> bool:
        """End it and everything it started: `ask` it to exit (a clean shutdown request; SIGTERM
        when None), wait up to `grace` s, then force what is left. True when it exited by itself."""

    @abc.abstractmethod
    def get_state(self) -> dict[str, Any]:
        """What is needed to find the process again after a control-plane restart (JSON-able)."""

    @abc.abstractmethod
    def load_state(self, state: dict[str, Any]) -> None:
        """Take over a process from `get_state()`; `poll()` then says whether it still runs."""


UNKNOWN_EXIT = -255  # poll()'s answer for a process that is gone but was not our child


class LocalProcess(ServerProcess):
    """A Jupyter server on this machine: its own session (it outlives the control plane), the
    user's umask, the environment it is given, its output in the log file.

    `pick_port(tried)` chooses the port for each attempt (the manager's picker skips ports other
    servers have reserved); when Jupyter exits at once because the port was taken meanwhile, the
    start is retried on another port, at most `PORT_ATTEMPTS` times, and the log says so."""

    def __init__(self, pick_port: Callable[[set[int]], int] | None = None, *, poll_interval: float = 0.02) -> None:
        self.pick_port = pick_port or (lambda tried: _first_free(tried))
        self.poll_interval = poll_interval
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ start
    def start(self, spec: LaunchSpec) -> ProcessState:
        tried: set[int] = set()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = self.pick_port(tried)
            tried.add(port)
            self._spawn(spec, port)
            try:
                self._wait_ready(spec)
                return ProcessState(pid=self.pid or 0, port=port, base_path=spec.base_path)
            except StartFailed as exc:
                if not self._port_was_taken(spec.log_path, port) or attempt == PORT_ATTEMPTS:
                    raise
                write_note(spec.log_path, f"port {port} was taken by another program before Jupyter could bind it "
                                    f"({exc.problem}); retrying on another port "
                                    f"(attempt {attempt + 1} of {PORT_ATTEMPTS})")
        raise AssertionError("unreachable")

    def _spawn(self, spec: LaunchSpec, port: int) -> None:
        cmd = spec.command(port)
        self._log_size = _size(spec.log_path)
        try:
            with open(spec.log_path, "ab") as out:
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             cwd=spec.cwd, env=spec.env, start_new_session=True, close_fds=True,
                                             umask=-1 if spec.umask is None else spec.umask)
        except OSError as exc:
            raise StartFailed(f"could not run Jupyter: {exc}", where=" ".join(cmd[:3])) from exc
        self.pid, self.port = self.proc.pid, port
        if spec.on_spawn is not None:
            spec.on_spawn(self.pid, port)

    def _wait_ready(self, spec: LaunchSpec) -> None:
        """Poll the new server's /api/status quickly (one kept-open connection) until it answers."""
        limit = time.monotonic() + spec.timeout
        problem = f"it did not answer within {spec.timeout:g} s"
        assert self.proc is not None and self.port is not None
        with JupyterApi(f"http://{HOST}:{self.port}{spec.base_path}", spec.token, timeout=2.0) as api:
            while time.monotonic() < limit:
                code = self.proc.poll()
                if code is not None:
                    problem = f"it exited with code {code} while starting"
                    break
                if api.answers():
                    return
                time.sleep(self.poll_interval)
        if self.proc.poll() is None:
            terminate(self.proc.pid, grace=5.0, proc=self.proc)
        raise StartFailed(problem)

    def _port_was_taken(self, log_path: Path, port: int) -> bool:
        """Jupyter exited (not timed out) and says its port was in use, or the port is held now."""
        if self.proc is None or self.proc.poll() is None:
            return False
        since = _read_from(log_path, self._log_size)
        return any(m in since for m in PORT_TAKEN_MARKS) or not port_free(HOST, port)

    # ------------------------------------------------------------------ poll, stop
    def poll(self) -> int | None:
        if self.proc is not None:
            return self.proc.poll()
        return None if pid_alive(self.pid) and self._is_our_jupyter() else UNKNOWN_EXIT

    def wait(self, timeout: float) -> int | None:
        """The exit code within `timeout` s (a killed multi-threaded process is a zombie a moment
        before it can be reaped); None while it runs or when it was not our child."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float, *, ask: Callable[[], None] | None = None) -> bool:
        if not self.pid or self.poll() is not None:
            return False
        kernels = children(self.pid)  # kernels run in their own sessions: list them while we can
        if ask is not None:
            ask()
        else:
            _sigterm(self.pid)
        limit = time.monotonic() + grace
        while time.monotonic() < limit and self.poll() is None:
            time.sleep(0.1)
        clean = self.poll() is not None
        terminate_tree(self.pid, grace=5.0, proc=self.proc, known_children=kernels)
        return clean

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        return {"pid": self.pid, "port": self.port}

    def load_state(self, state: dict[str, Any]) -> None:
        self.proc = None
        self.pid, self.port = state.get("pid"), state.get("port")

    def _is_our_jupyter(self) -> bool:
        """Guard against a reused pid: the process must be a Jupyter server on the recorded port."""
        try:
            import psutil
            cmdline = psutil.Process(self.pid).cmdline()
        except Exception:
            return False
        return f"--ServerApp.port={self.port}" in cmdline


def _sigterm(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _first_free(tried: set[int]) -> int:
    return free_port(HOST, 8888, skip=tried, count=500)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(256_000).decode("utf-8", "replace")
    except OSError:
        return "\n".join(tail(path, 40))
