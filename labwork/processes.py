"""Process and port helpers every layer may use: is a pid alive, is a port free, a free port, the
end of a log file, and ending a process together with its children.

Base layer: imports nothing of labwork but `errors`, so the control plane (server/), the parts
(notebooks, gateway) and the CLI share one copy of each.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from labwork.errors import Unavailable


def port_free(host: str, port: int, *, reuse_addr: bool = False) -> bool:
    """Whether a listening socket can bind host:port now. With `reuse_addr`, as uvicorn binds
    (SO_REUSEADDR), a port held only by TIME-WAIT connections (a restart right after kill -9)
    counts as free; without it, as Jupyter's own port check binds, it does not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        if reuse_addr:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", start: int = 0, *, skip: frozenset[int] | set[int] = frozenset(),
              count: int = 200) -> int:
    """`start` if free, else the next free one not in `skip` (within `count` ports); 0 asks the OS."""
    if start:
        for port in range(start, start + count):
            if port not in skip and port_free(host, port):
                return port
        raise Unavailable(f"no free port in {start}..{start + count - 1}", where=host)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def tail(path: str | Path, lines: int = 20, *, max_bytes: int = 64_000) -> list[str]:
    """The last `lines` lines of a text file, read from its last `max_bytes` only (a partial first
    line of that window is dropped); all lines of the window when `lines` < 0; [] when it is gone."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    out = data.decode("utf-8", "replace").splitlines()
    if size > max_bytes and out:
        out = out[1:]
    return out[-lines:] if lines >= 0 else out


def children(pid: int) -> list[int]:
    """The pids of a process's descendants ([] when it is gone or psutil cannot see it)."""
    try:
        import psutil
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:
        return []


def terminate(pid: int, *, grace: float, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; `proc` (our own child) is reaped meanwhile."""
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


def terminate_tree(pid: int, *, grace: float, proc: subprocess.Popen | None = None,
                   known_children: list[int] | None = None) -> None:
    """End a process and every descendant (kernels run in sessions of their own, so killing the
    parent's group would miss them). `known_children` are ones listed before the parent began to
    exit, when they could still be found through it."""
    kids = list(dict.fromkeys([*(known_children or []), *children(pid)]))
    terminate(pid, grace=grace, proc=proc)
    for k in kids:
        terminate(k, grace=min(grace, 3.0))
