"""A real sshd on 127.0.0.2 for the remote-kernel tests: the "remote host" is this machine.

127.0.0.2, not 127.0.0.1: jupyter_client counts 127.0.0.1 and the machine's own addresses as
local, so a provisioner would skip SSH. The daemon is Debian's openssh-server with its own config,
a generated host key, key-only login of the current user (root) with a generated client key, on a
free port; `known_hosts` holds its host key so clients verify it. One per session, stopped after.
"""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.waiting import free_port, wait_for

HOST = "127.0.0.2"
SSHD = "/usr/sbin/sshd"


@dataclass
class SshHost:
    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    host_key_line: str  # "[host]:port type key": what to add to a known_hosts to trust it
    proc: subprocess.Popen | None = None

    def ssh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on the host with OpenSSH's client (verifying the host key)."""
        return subprocess.run(
            ["ssh", "-i", str(self.key_file), "-p", str(self.port), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
             f"{self.user}@{self.host}", command], capture_output=True, text=True, timeout=timeout)


def _missing(what: str) -> None:
    msg = f"remote-kernel tests need {what}"
    if os.environ.get("LABWORK_TEST_DOCKER_REQUIRED") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def start_sshd(folder: Path, set_env: dict[str, str] | None = None, hide: Path | None = None) -> SshHost:
    """An sshd on 127.0.0.2 (its keys and config in `folder`); `set_env` goes into its sessions'
    environment (sshd's SetEnv). With `hide`, it runs in a mount namespace of its own with an empty
    tmpfs over that folder: a "host" that does not share it (the project folder there is not the
    one here), as a real remote machine would not."""
    if os.geteuid() != 0:
        _missing("root (an sshd is started for the session)")
    if not Path(SSHD).exists() or not shutil.which("ssh-keygen"):
        _missing("Debian's openssh-server (scripts/setup.sh test installs it as root)")
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = free_port(HOST)
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress {HOST}", f"Port {port}", f"HostKey {folder / 'host_key'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", f"PidFile {folder / 'sshd.pid'}",
        "PermitRootLogin prohibit-password", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "AllowTcpForwarding yes",
        "LogLevel ERROR", "Subsystem sftp internal-sftp",
        *(f"SetEnv {k}={v}" for k, v in (set_env or {}).items()), ""]))
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    log = open(folder / "sshd.log", "ab")  # noqa: SIM115 - kept for the session
    cmd = [SSHD, "-D", "-e", "-f", str(config)]
    if hide is not None:
        if not shutil.which("unshare"):
            _missing("util-linux's unshare (a host that does not share a folder)")
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               f"mount -t tmpfs none {shlex.quote(str(hide))} && exec {shlex.join(cmd)}"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def listening() -> bool:
        if proc.poll() is not None:
            raise AssertionError((folder / "sshd.log").read_text())
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex((HOST, port)) == 0
    wait_for(listening, timeout=30, what="the test sshd")
    key_type, key = (folder / "host_key.pub").read_text().split()[:2]
    line = f"[{HOST}]:{port} {key_type} {key}"
    (folder / "known_hosts").write_text(line + "\n")
    import pwd
    return SshHost(host=HOST, port=port, user=pwd.getpwuid(os.geteuid()).pw_name,
                   key_file=folder / "client_key", known_hosts=folder / "known_hosts",
                   host_key_line=line, proc=proc)


def stop_sshd(host: SshHost) -> None:
    if host.proc is not None and host.proc.poll() is None:
        host.proc.terminate()
        try:
            host.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            host.proc.kill()
            host.proc.wait()


@pytest.fixture(scope="session")
def ssh_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHost]:
    """The session's sshd on 127.0.0.2 with a client key and a known_hosts that trusts it."""
    host = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield host
    finally:
        stop_sshd(host)
