"""A jupyter_client kernel provisioner that runs the kernel on a remote host over SSH.

Our own rather than gateway_provisioners' DistributedProvisioner (0.5.0): its graceful shutdown
reports the kernel dead at once while the remote process lives ~30 s more (ipykernel waits on the
launcher's never-reaped listener child), it needs a response listener on the machine's public
address, refuses root by default, and passes the server's environment along. Here:

* one OpenSSH session per kernel runs `exec <venv>/bin/python -m labwork.kernels.launch` in the
  project folder on the host with `env -i` and only the kernel spec's variables; its life is the
  kernel's life (poll), and it is the ControlMaster that interrupts and shutdown reuse;
* the kernel binds the host's address with ports it picks itself (a connection file with port 0,
  written back by ipykernel once bound) and labwork reads them back: no port guessing;
* interrupt is `kill -INT <pid>` on the host; shutdown is the kernel's own shutdown request, then
  `kill -TERM`/`-KILL` of that pid and the removal of its run folder: nothing lingers;
* the kernel's own SSH connection (labwork.kernels.tunnels, opened first, closed at shutdown)
  carries every command of it and the control plane reverse-forwarded to the host's loopback:
  the kernel's LABWORK_URL is that address, since the host cannot reach this machine's 127.0.0.1;
* its credential is its user's personal token, sent over the session's input into a 0600 file in
  its run folder (labwork.kernels.credentials): never on the host's command line;
* before the kernel starts, the project is placed on the host (shared, or a copy updated with
  rsync: labwork.kernels.remote_copy) and run-history spools left on the host by kernels that could
  not reach the control plane are brought back to it; again at shutdown.
"""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import KernelProvisionerBase

from pathlib import Path

from labwork import envvars
from labwork.errors import LabworkError, Unavailable
from labwork.kernels.credentials import kernel_token
from labwork.kernels.provisioned_ends import end_reason, provisioned_end
from labwork.kernels.end_report import report_end
from labwork.kernels.ends import KernelEnd
from labwork.kernels.remote_copy import bring_back_spools, place_project
from labwork.kernels.remote_watch import watched
from labwork.kernels.ssh import Ssh, q
from labwork.kernels.tunnels import LOOPBACK, Tunnel, plane_port

PASSED_THROUGH = ("JPY_SESSION_NAME",)


class SshKernelProvisioner(KernelProvisionerBase):  # type: ignore[misc]
    """Starts the kernel command on the target host (labwork.kernels.ssh for the connection)."""

    proc: subprocess.Popen | None = None
    remote_pid: int | None = None
    end_reason: str | None = None
    _exit: int | None = None
    _stopping = False
    _ssh: Ssh | None = None
    _ports: dict[str, int] | None = None
    workdir: str | None = None  # the host's copy of the project, when it does not share the folder
    _tunnel: Tunnel | None = None
    _url: str | None = None  # the control plane as the host sees it (a reverse forward)

    def __init__(self, **kwargs: Any) -> None:
        # jupyter_client passes the spec's provisioner config as keyword arguments
        own = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("kernel_id", "kernel_spec", "parent", "config", "log")}
        super().__init__(**kwargs)
        self.provisioner_config = own

    def _cfg(self, key: str, default: Any = None) -> Any:
        return (self.provisioner_config or {}).get(key, default)

    @property
    def ssh(self) -> Ssh:
        if self._ssh is None:
            self._ssh = Ssh.from_config(self.provisioner_config or {})
        return self._ssh

    @property
    def has_process(self) -> bool:
        return self.proc is not None

    @property
    def run_dir(self) -> str:
        return f"{self._cfg('home')}/run/{self.kernel_id}"

    @property
    def remote_connection_file(self) -> str:
        return f"{self.run_dir}/kernel-{self.kernel_id}.json"

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        km = self.parent
        extra = kwargs.pop("extra_arguments", [])
        if km is not None:
            km.ip = await asyncio.to_thread(socket.gethostbyname, self.ssh.host)
        conn = self.remote_connection_file
        kernel_cmd = [a.replace("{connection_file}", conn) for a in self.kernel_spec.argv] + list(extra)
        kwargs = await super().pre_launch(cmd=kernel_cmd, **kwargs)
        return kwargs

    def _remote_script(self, cmd: list[str], launch_env: dict[str, str]) -> str:
        env = {k: v for k, v in (self.kernel_spec.env or {}).items() if k != "PYTHONPATH"}
        env.update({k: launch_env[k] for k in PASSED_THROUGH if k in launch_env})
        env["LABWORK_HOME"] = self._cfg("home")
        env["PYTHONPATH"] = f"{self._cfg('venv')}/labwork-lib"
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
        env["PYTHONUNBUFFERED"] = "1"
        if self.workdir:
            env["LABWORK_PROJECT_COPY"] = self.workdir
        if self._url:
            env["LABWORK_URL"] = self._url
        env[envvars.TOKEN_FILE] = f"{self.run_dir}/token"  # its user's token (labwork.kernels.credentials)
        assigns = " ".join(q(f"{k}={v}") for k, v in sorted(env.items()))
        conn = self.remote_connection_file
        project = self.workdir or self._cfg("project")
        home = q(self._cfg("home"))
        return (f"umask 077 && mkdir -p {q(self.run_dir)} {home}/spool && rm -f {home}/token && IFS= read -r LABWORK_T && "
                f"printf %s \"$LABWORK_T\" > {q(self.run_dir + '/token')} && unset LABWORK_T && IFS= read -r LABWORK_C && "
                f"printf '%s\\n' \"$LABWORK_C\" > {q(conn)} && unset LABWORK_C && "
                f"if [ ! -d {q(project)} ]; then echo 'labwork: the project folder {project} is not on this host' >&2; "
                f"exit 3; fi && cd {q(project)} && "
                f"exec env -i {assigns} {watched(cmd)}")

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        try:
            return await self._launch(cmd, **kwargs)
        except BaseException:  # a kernel that did not start leaves no connection or forward
            if self.proc is None:
                await asyncio.to_thread(self._close_tunnel)
            raise

    async def _launch(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        km = self.parent
        ip = socket.gethostbyname(self.ssh.host)
        # first start: ports 0, the kernel picks them; a restart keeps them (clients stay connected)
        ports = self._ports or {f"{c}_port": 0 for c in ("shell", "iopub", "stdin", "control", "hb")}
        conn = {"ip": ip, "transport": "tcp", **ports, "key": km.session.key.decode() if km else "",
                "signature_scheme": km.session.signature_scheme if km else "hmac-sha256",
                "kernel_name": km.kernel_name if km else ""}
        await asyncio.to_thread(self._open_tunnel)
        self.workdir = await asyncio.to_thread(place_project, self.ssh, self._cfg("project"),
                                               self._cfg("project_files", "detect"))
        await asyncio.to_thread(self._bring_back_spools)
        script = self._remote_script(cmd, dict(kwargs.get("env") or {}))
        args = self.ssh.args(master=True) + [script]
        self.proc = await asyncio.to_thread(subprocess.Popen, args, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.end_reason, self._exit, self.remote_pid, self._stopping = None, None, None, False
        assert self.proc.stdin is not None
        # two lines, then the pipe stays open and silent: its end is the host's signal to end the kernel
        token = kernel_token(kwargs.get("env") or {}, self._cfg("control_home", ""))
        self.proc.stdin.write((token + "\n" + json.dumps(conn) + "\n").encode())
        self.proc.stdin.flush()
        self._stderr: list[str] = []
        pid_line = await asyncio.to_thread(self._read_pid)
        if pid_line is None:
            await asyncio.to_thread(self.proc.wait)
            err = "".join(self._stderr)
            self.proc = None
            if "not on this host" in err:
                raise Unavailable(err.strip().splitlines()[-1].removeprefix("labwork: "), where=self.ssh.where,
                                  hint="share the project folder with the host at the same path, or set "
                                       "project_files = \"copy\" in the compute target")
            raise self.ssh.failure(err)
        self.remote_pid = pid_line
        info = await asyncio.to_thread(self._read_ports, conn)
        self._ports = {k: info[k] for k in ports}
        self.connection_info = info
        self.log.info("labwork: kernel %s runs on %s as pid %s", self.kernel_id, self.ssh.where, self.remote_pid)
        return info

    def _open_tunnel(self) -> None:
        """The kernel's own connection (every later command goes over it) and the reverse forward."""
        if self._tunnel is not None and self._tunnel.alive:
            return
        self._tunnel = Tunnel(self.ssh, self.kernel_id or "kernel").open()
        self._ssh = self._tunnel.ssh
        port = plane_port((self.kernel_spec.env or {}).get("LABWORK_URL"))
        if port is None:
            try:
                port = plane_port(json.loads((Path(self._cfg("control_home", "")) / "control.json").read_text()).get("url"))
            except (OSError, ValueError, AttributeError):
                port = None
        self._url = f"http://{LOOPBACK}:{self._tunnel.reverse(port)}" if port else None

    def _close_tunnel(self) -> None:
        if self._tunnel is not None:
            self._tunnel.close()
        self._tunnel, self._url, self._ssh = None, None, None

    def _bring_back_spools(self) -> None:
        """Spools the host holds for kernels that are gone, into the control plane's spool."""
        venv = self._cfg("venv")
        try:
            n = bring_back_spools(self.ssh, f"{venv}/bin/python", f"{venv}/labwork-lib", self._cfg("home"),
                                  Path(self._cfg("control_home")) / "spool")
        except (LabworkError, OSError, subprocess.TimeoutExpired) as exc:  # they stay there for the next start
            self.log.warning("labwork: spools on %s stay there for now: %s", self.ssh.where, exc)
            return
        if n:
            self.log.info("labwork: brought back %d run-history spool(s) from %s", n, self.ssh.where)

    def _read_pid(self) -> int | None:
        assert self.proc is not None and self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        line = self.proc.stdout.readline().decode()
        if not line.startswith("LABWORK_PID="):
            return None
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        return int(line.split("=", 1)[1])

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            text = raw.decode(errors="replace")
            self._stderr = (self._stderr + [text])[-50:]
            sys.stderr.write(text)

    def _drain_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            sys.stderr.write(raw.decode(errors="replace"))

    def _read_ports(self, conn: dict[str, Any]) -> dict[str, Any]:
        """ipykernel rewrites its connection file with the ports it bound: read them back."""
        path = self.remote_connection_file
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise Unavailable(f"the kernel on {self.ssh.where} exited at start: {''.join(self._stderr)[-600:]}",
                                  where=self.ssh.where)
            out = self.ssh.run(f"cat {q(path)}", check=False, timeout=30).stdout
            try:
                info = json.loads(out)
            except ValueError:
                info = {}
            if info.get("shell_port"):
                info["key"] = conn["key"].encode()
                return info
            time.sleep(0.1)
        raise Unavailable(f"the kernel on {self.ssh.where} did not bind its ports", where=self.ssh.where)

    async def poll(self) -> int | None:
        if self.proc is None:
            return self._exit if self._exit is not None else 0
        code = self.proc.poll()
        if code is not None and self.end_reason is None:
            self.end_reason = (f"host {self.ssh.host}: the SSH connection was lost" if code == 255 else
                               end_reason(provisioned_end(self.kernel_id, exit_code=code, where=f"host {self.ssh.host}",
                                                          run_config=self._cfg("runconfig"))))
            self._exit = code
            if not self._stopping:  # ssh's status is the remote kernel's (255: killed, or the link lost)
                report_end(KernelEnd(kernel_id=self.kernel_id or "", run_config=self._cfg("runconfig"),
                                     exit_code=code, where=f"host {self.ssh.host}"), self.log)
        return code

    async def shutdown_requested(self, restart: bool = False) -> None:
        self._stopping = True
        await super().shutdown_requested(restart=restart)

    async def wait(self) -> int | None:
        while True:
            code = await self.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.1)

    async def send_signal(self, signum: int) -> None:
        if self.remote_pid is None or self.proc is None or self.proc.poll() is not None:
            return
        name = signal.Signals(signum).name.removeprefix("SIG")
        await asyncio.to_thread(self.ssh.run, f"kill -{name} {self.remote_pid}", check=False, timeout=30)

    async def kill(self, restart: bool = False) -> None:
        await self.poll()  # a kernel that died before Jupyter's kill is reported as such
        self._stopping = True
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.poll()
        self._stopping = True
        await self.send_signal(signal.SIGTERM)

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return min(recommended, 5.0)

    async def cleanup(self, restart: bool = False) -> None:
        """The remote process and run folder gone; the local ssh session ended."""
        pid, proc = self.remote_pid, self.proc
        script = f"rm -rf {q(self.run_dir)}"
        if pid:
            # gone before the spool is looked at (its lock is free then); bounded: 50 x 0.1 s
            script = (f"kill -KILL {pid} 2>/dev/null; i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt 50 ]; "
                      f"do sleep 0.1; i=$((i+1)); done; {script}")
        try:
            await asyncio.to_thread(self.ssh.run, script, check=False, timeout=30)
        except Exception as exc:  # noqa: BLE001 - the host went away: nothing more to end there
            self.log.warning("labwork: cleaning up kernel %s on %s: %s", self.kernel_id, self.ssh.where, exc)
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            await asyncio.to_thread(proc.wait)
            if proc.stdin is not None:
                proc.stdin.close()
        if pid:  # the kernel has let go of its spool's lock: what it could not deliver comes back now
            await asyncio.to_thread(self._bring_back_spools)
        self.proc, self.remote_pid = None, None
        if not restart:
            self._ports = None
            await asyncio.to_thread(self._close_tunnel)

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update({"remote_pid": self.remote_pid, "host": self.ssh.host,
                     "tunnel_pid": self._tunnel.pid if self._tunnel else None})
        return info
