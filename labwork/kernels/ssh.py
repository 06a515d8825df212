"""SSH to a remote compute target with OpenSSH's client, and its failures in plain words.

OpenSSH rather than paramiko: it is what `rsync` and the user's own `ssh` use, it multiplexes
(ControlMaster: one handshake per kernel, then interrupts and shutdowns are instant) and it is on
every Linux host. Host keys are always checked (`StrictHostKeyChecking=yes`): an unknown host is
refused with the command that trusts it. Only key authentication, never a password prompt.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from labwork.errors import Forbidden, MissingExtra, Unavailable
from labwork.project.models import RemoteTarget


@dataclass
class Ssh:
    host: str
    port: int
    user: str | None
    key_file: str | None
    known_hosts: str | None
    control_path: str | None = None  # a kernel's own master (labwork.kernels.tunnels); else shared per host

    @classmethod
    def for_target(cls, target: RemoteTarget) -> "Ssh":
        return cls(host=target.host, port=target.port, user=target.user,
                   key_file=os.path.expanduser(target.key_file) if target.key_file else None,
                   known_hosts=os.path.expanduser(target.known_hosts) if target.known_hosts else None)

    @classmethod
    def from_config(cls, cfg: dict) -> "Ssh":
        return cls(host=cfg["host"], port=int(cfg["port"]), user=cfg.get("user"), key_file=cfg.get("key_file"),
                   known_hosts=cfg.get("known_hosts"))

    def connection(self) -> dict:
        return {"host": self.host, "port": self.port, "user": self.user, "key_file": self.key_file,
                "known_hosts": self.known_hosts}

    @property
    def where(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    def args(self, *, master: bool = False, hold: bool = False) -> list[str]:
        """ssh's arguments up to the destination. `master`: reuse (or become) the master connection;
        `hold`: be this control path's master in the foreground (a kernel's tunnel)."""
        exe = shutil.which("ssh")
        if not exe:
            raise MissingExtra("remote", "a remote compute target (OpenSSH's ssh client: apt-get install openssh-client)")
        control = self.control_path or control_dir() / f"cm-{self._login_id()}"
        mode = "yes" if hold else "auto" if master else "no"
        out = [exe, "-p", str(self.port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
               "-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15", "-o", f"ControlPath={control}",
               "-o", f"ControlMaster={mode}", "-o", "LogLevel=ERROR"]
        if hold:
            out += ["-o", "ControlPersist=no", "-o", "ExitOnForwardFailure=yes"]
        elif master:
            out += ["-o", "ControlPersist=120"]
        if self.key_file:
            out += ["-i", self.key_file, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            out += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        return out + ([f"{self.user}@{self.host}"] if self.user else [self.host])

    def _login_id(self) -> str:
        """The shared master's name: host, port, user AND key and known_hosts, so a login with another
        key or another known_hosts never rides on a master that was checked with different ones."""
        raw = "\0".join(str(v) for v in (self.host, self.port, self.user, self.key_file, self.known_hosts))
        return hashlib.sha1(raw.encode()).hexdigest()[:16]

    def run(self, command: str, *, input: bytes | None = None, timeout: float = 600,
            check: bool = True) -> subprocess.CompletedProcess:
        """One command on the host (through the kernel's master connection when there is one)."""
        proc = subprocess.run(self.args(master=True) + [command], input=input, capture_output=True, timeout=timeout)
        if proc.returncode == 255:
            raise self.failure(proc.stderr.decode(errors="replace"))
        if check and proc.returncode != 0:
            raise Unavailable(f"'{command[:80]}' failed on {self.where} (exit {proc.returncode}): "
                              f"{proc.stderr.decode(errors='replace').strip()[-400:]}", where=self.where)
        return proc

    def failure(self, stderr: str) -> Exception:
        """ssh's exit 255 as the error a user can act on."""
        text = stderr.strip()
        known = self.known_hosts or "~/.ssh/known_hosts"
        host = f"[{self.host}]:{self.port}" if self.port != 22 else self.host
        if "Host key verification failed" in text or "No ED25519 host key is known" in text \
                or "host key for" in text.lower():
            return Forbidden(f"the host key of {self.host}:{self.port} is not known, so labwork refuses to connect "
                             f"(it never accepts unknown hosts)", where=self.where,
                             hint=f"check the key's fingerprint with the host's owner, then trust it: "
                                  f"ssh-keyscan -p {self.port} {self.host} >> {known}   "
                                  f"(or set known_hosts in the compute target)",
                             details={"ssh": text[-400:], "known_hosts_entry": host})
        if "Permission denied" in text:
            return Forbidden(f"{self.where} refused the SSH login: {text.splitlines()[-1]}", where=self.where,
                             hint="check user and key_file in the compute target, and that the key is in the "
                                  "host's authorized_keys")
        return Unavailable(f"cannot reach {self.where} over SSH: {text.splitlines()[-1] if text else 'ssh failed'}",
                           where=self.where, hint="check host and port in the compute target and that sshd runs there")

    def close(self) -> None:
        """End the master connection (if one is open)."""
        subprocess.run(self.args(master=True)[:-1] + ["-O", "exit", self.args()[-1]], capture_output=True, timeout=30)


def control_dir() -> Path:
    """The folder (0700) of labwork's SSH control sockets and tunnel sockets."""
    d = Path(tempfile.gettempdir()) / f"labwork-ssh-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    os.chmod(d, 0o700)
    return d


def q(value: str) -> str:
    return shlex.quote(value)
