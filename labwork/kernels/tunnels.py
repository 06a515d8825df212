"""A kernel's own SSH connection to its host, and the forwards it carries.

A kernel on another host (the `remote` kind, or a container on a Docker daemon reached with
`docker_host = "ssh://user@host"`) cannot use this machine's loopback, and its kernel ports are
not on this machine. One OpenSSH master connection per kernel (`Tunnel`, a foreground
`ssh -M -N` that the provisioner owns, on its own control socket) carries all of it:

* `reverse(port)`: `-R 127.0.0.1:0:127.0.0.1:<port>`, the control plane on the host's loopback at a
  port sshd picks; the kernel's LABWORK_URL points there, so run history, uploads and
  `get_logger()` reach the plane (which still asks for its token);
* `forward(remote_port)`: `-L 127.0.0.1:<free port>:127.0.0.1:<remote_port>`, a kernel port on the
  host's loopback reached from here (the connection info jupyter_client gets names these);
* every other command of the kernel (`Ssh.run`, rsync, `docker system dial-stdio`) is multiplexed
  over it, so there is one handshake per kernel;
* `close()` ends the master: every forward with it. Nothing is left: the process is ours (no
  ControlPersist), and it is waited for.

Host keys are checked as everywhere in labwork (labwork.kernels.ssh): an unknown host is refused.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import time
from dataclasses import replace
from typing import Any

from labwork.errors import Unavailable
from labwork.kernels.ssh import Ssh, control_dir

LOOPBACK = "127.0.0.1"


def free_local_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def plane_port(url: str | None) -> int | None:
    """The port of the control plane's http://127.0.0.1:PORT address (None if not one)."""
    m = re.match(r"^https?://[^/:]+:(\d+)", url or "")
    return int(m.group(1)) if m else None


class Tunnel:
    """One kernel's master connection to its host (see the module's docstring)."""

    def __init__(self, ssh: Ssh, name: str) -> None:
        tag = re.sub(r"[^A-Za-z0-9]", "", name)[:16] or os.urandom(6).hex()
        self.ssh = replace(ssh, control_path=str(control_dir() / f"k-{tag}"))
        self.proc: subprocess.Popen | None = None
        self.forwards: dict[int, int] = {}  # local port -> remote port
        self.reverses: dict[int, int] = {}  # remote port -> local port
        self._log: Any = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def open(self, timeout: float = 60) -> "Tunnel":
        """Start the master and wait until it accepts sessions (or say why it cannot)."""
        if self.alive:
            return self
        path = self.ssh.control_path or ""
        if os.path.exists(path):  # left by a crash of an earlier process: ours now
            self._exit()
            if os.path.exists(path):
                os.unlink(path)
        args = self.ssh.args(hold=True)
        self._log = tempfile.TemporaryFile(dir=control_dir())  # ssh's own words, if it fails
        self.proc = subprocess.Popen(args[:-1] + ["-N", args[-1]], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                self.proc = None
                self._log.close()
                raise self.ssh.failure(err)
            if os.path.exists(path) and self._control("check").returncode == 0:
                return self
            time.sleep(0.05)
        self.close()
        raise Unavailable(f"the SSH connection to {self.ssh.where} did not come up in {timeout:.0f}s",
                          where=self.ssh.where, hint="check that the host answers (ssh to it by hand)")

    def _control(self, op: str, *extra: str) -> subprocess.CompletedProcess:
        args = self.ssh.args(master=True)
        return subprocess.run(args[:-1] + ["-O", op, *extra, args[-1]], capture_output=True, timeout=30)

    def reverse(self, local_port: int) -> int:
        """The host's loopback port that leads to this machine's 127.0.0.1:<local_port>."""
        proc = self._control("forward", "-R", f"{LOOPBACK}:0:{LOOPBACK}:{local_port}")
        out = proc.stdout.decode().strip()
        if proc.returncode != 0 or not out.splitlines() or not out.splitlines()[-1].isdigit():
            raise Unavailable(f"{self.ssh.where} refused a reverse forward to the control plane: "
                              f"{proc.stderr.decode(errors='replace').strip()[-300:]}", where=self.ssh.where,
                              hint="allow TCP forwarding in the host's sshd (AllowTcpForwarding yes)")
        port = int(out.splitlines()[-1])
        self.reverses[port] = local_port
        return port

    def forward(self, remote_port: int, local_port: int | None = None) -> int:
        """A port on this machine's loopback that leads to the host's 127.0.0.1:<remote_port>."""
        last = ""
        for attempt in range(5):
            port = local_port if local_port and attempt == 0 else free_local_port()
            proc = self._control("forward", "-L", f"{LOOPBACK}:{port}:{LOOPBACK}:{remote_port}")
            if proc.returncode == 0:
                self.forwards[port] = remote_port
                return port
            last = proc.stderr.decode(errors="replace").strip()
            if not self.alive:
                break
        raise Unavailable(f"could not forward a local port to port {remote_port} on {self.ssh.where}: "
                          f"{last[-300:]}", where=self.ssh.where,
                          hint="allow TCP forwarding in the host's sshd (AllowTcpForwarding yes)")

    def cancel_forwards(self) -> None:
        """Drop the local forwards (a restarted kernel binds new ports on the host)."""
        for port, remote in list(self.forwards.items()):
            self._control("cancel", "-L", f"{LOOPBACK}:{port}:{LOOPBACK}:{remote}")
            self.forwards.pop(port, None)

    def _exit(self) -> None:
        try:
            self._control("exit")
        except (OSError, subprocess.TimeoutExpired):
            pass

    def close(self) -> None:
        """End the connection and every forward it carries; wait for the process."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            self._exit()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.forwards.clear()
        self.reverses.clear()
        path = self.ssh.control_path
        if path and os.path.exists(path) and proc is not None:
            os.unlink(path)
