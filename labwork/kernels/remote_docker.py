"""Docker daemons on other hosts: `docker_host = "ssh://user@host[:port]"`, as Docker itself does it.

The Docker SDK speaks to a local unix socket (`DialStdio`, 0600 in labwork's 0700 SSH folder);
each connection to it is `docker system dial-stdio` run on the host over the kernel's (or the
prepare's) own SSH connection (labwork.kernels.tunnels), so the host's `docker` finds its daemon
the way it always does there (DOCKER_HOST in the login environment, or its `docker context`).
Host keys are checked, keys come from the target's `key_file`/`known_hosts`: never a prompt.

A kernel's container runs on that host (`RemoteContainer`), so nothing of it is on this machine:

* its LABWORK_HOME is `~/.labwork-remote/homes/<project>-<runconfig>` on the host (a
  control.json naming the tunnelled address, the spool, the connection file in `run/<kernel>`);
  its user's token is `~/.labwork-remote/tokens/<kernel>` there, outside the home, mounted
  read-only into its container alone (labwork.kernels.credentials);
* the project is mounted at its own path when the host shares it, else the rsync copy of
  labwork.kernels.remote_copy is mounted there (`project_files` of the target), so notebook paths
  and `outputs/` are the same inside as here;
* the container uses the host's network and its kernel binds the host's loopback (ports it picks,
  read back from its connection file); each port is forwarded to a free port on this machine's
  loopback, and those are what jupyter_client connects to;
* LABWORK_URL is the control plane reverse-forwarded to the host's loopback;
* shutdown removes the container and its run folder, then closes the connection and every forward.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from labwork.errors import ConfigError, MissingExtra, Unavailable
from labwork.kernels.remote_copy import place_project
from labwork.kernels.ssh import Ssh, control_dir, q
from labwork.kernels.tunnels import LOOPBACK, Tunnel, plane_port

PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
HOMES = ".labwork-remote/homes"
TOKENS = ".labwork-remote/tokens"  # kernels' token files: outside the homes containers mount


def is_ssh(docker_host: str | None) -> bool:
    return bool(docker_host and docker_host.startswith("ssh://"))


def ssh_of(docker_host: str, key_file: str | None = None, known_hosts: str | None = None) -> Ssh:
    """The SSH login of an ssh:// Docker host (user, host, port from the URL)."""
    u = urllib.parse.urlparse(docker_host)
    try:
        port = u.port or 22
    except ValueError:
        port = -1
    if not u.hostname or port < 1 or u.path not in ("", "/"):
        raise ConfigError(f"docker_host {docker_host!r} is not ssh://[user@]host[:port]",
                          where="docker_host", hint="write it as ssh://user@vm or ssh://user@vm:2222")
    return Ssh(host=u.hostname, port=port, user=u.username or None,
               key_file=os.path.expanduser(key_file) if key_file else None,
               known_hosts=os.path.expanduser(known_hosts) if known_hosts else None)


class DialStdio:
    """A local unix socket whose every connection is `docker system dial-stdio` on the host."""

    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel
        self.path = str(control_dir() / f"d-{os.urandom(6).hex()}.sock")
        self.errors: list[str] = []  # the host's words (docker missing, daemon down)
        self._procs: list[subprocess.Popen] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self._server.bind(self.path)
        finally:
            os.umask(old)
        self._server.listen(16)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="labwork-dial-stdio").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            proc = subprocess.Popen(self.tunnel.ssh.args(master=True) + ["docker system dial-stdio"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except Exception as exc:  # noqa: BLE001 - no ssh client: the SDK sees a closed socket
            self.errors.append(str(exc))
            conn.close()
            return
        self._procs = [p for p in self._procs if p.poll() is None] + [proc]
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

        def up() -> None:
            try:
                while data := conn.recv(65536):
                    proc.stdin.write(data)
                    proc.stdin.flush()
            except OSError:
                pass
            finally:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        threading.Thread(target=up, daemon=True).start()
        threading.Thread(target=self._stderr, args=(proc,), daemon=True).start()
        try:
            while data := proc.stdout.read1(65536):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()
            if proc.poll() is None:
                proc.terminate()
            proc.wait()

    def _stderr(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            self.errors = (self.errors + [raw.decode(errors="replace").strip()])[-10:]

    def close(self) -> None:
        self._closed = True
        try:
            self._server.close()
        finally:
            if os.path.exists(self.path):
                os.unlink(self.path)
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()


def ssh_docker_client(docker_host: str, key_file: str | None = None, known_hosts: str | None = None,
                      tunnel: Tunnel | None = None, timeout: float = 60) -> Any:
    """A Docker SDK client of the daemon on an ssh:// host; closing it ends its connection
    (unless `tunnel`, a kernel's own, was given: that one is the kernel's to close)."""
    try:
        import docker
    except ImportError as exc:
        raise MissingExtra("remote", "a docker compute target") from exc
    own = tunnel is None
    tunnel = tunnel or Tunnel(ssh_of(docker_host, key_file, known_hosts), f"p{os.urandom(6).hex()}")
    tunnel.open(timeout=timeout)
    relay = DialStdio(tunnel)

    class SshDockerClient(docker.DockerClient):  # type: ignore[misc, name-defined]
        def close(self) -> None:
            try:
                super().close()
            finally:
                relay.close()
                if own:
                    tunnel.close()

    client = SshDockerClient(base_url=f"unix://{relay.path}", timeout=120)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - the SDK raises several kinds for "not there"
        words = " / ".join(e for e in relay.errors if e) or (str(exc).strip().splitlines() or ["no answer"])[-1]
        client.close()
        raise Unavailable(f"the Docker daemon at {docker_host} is not reachable: {words}",
                          where=docker_host,
                          hint="on the host, `docker version` must reach the daemon for this user (docker "
                               "installed; DOCKER_HOST in the login environment or a `docker context use`)") from exc
    return client


class RemoteContainer:
    """One kernel's side on an ssh:// Docker host (see the module's docstring)."""

    def __init__(self, cfg: dict[str, Any], kernel_id: str) -> None:
        self.cfg = cfg
        self.kernel_id = kernel_id
        self.tunnel = Tunnel(ssh_of(cfg["docker_host"], cfg.get("key_file"), cfg.get("known_hosts")), kernel_id)
        self.client: Any = None
        self.url: str | None = None  # the control plane as the host sees it ("" if none)
        self.home = ""
        self.local_ports: dict[str, int] = {}

    @property
    def where(self) -> str:
        return self.tunnel.ssh.where

    def connect(self) -> Any:
        if self.client is None:
            self.tunnel.open()
            self.client = ssh_docker_client(self.cfg["docker_host"], tunnel=self.tunnel)
        return self.client

    @property
    def run_dir(self) -> str:
        return f"{self.home}/run/{self.kernel_id}"

    @property
    def connection_file(self) -> str:
        return f"{self.run_dir}/kernel-{self.kernel_id}.json"

    @property
    def token_file(self) -> str:
        """The kernel's token file on the host (absolute once `prepare` has found the home)."""
        return f"{Path(self.home).parent.parent}/tokens/{self.kernel_id}" if self.home else ""

    def prepare(self, spec_url: str | None, control_home: str, conn: dict[str, Any],
                token: str = "") -> dict[str, Any]:
        """The kernel's home on the host, the project there, the reverse tunnel: what to run with.
        `token` (the kernel's user's) goes into the kernel's own token file there."""
        ssh = self.tunnel.ssh
        project = self.cfg["project"]
        copy = place_project(ssh, project, self.cfg.get("project_files") or "detect")
        on_host = copy or project
        if self.url is None:  # no control plane known: no forward (run history spools on the host)
            port = plane_port(spec_url) or plane_port(_file_url(control_home))
            self.url = f"http://{LOOPBACK}:{self.tunnel.reverse(port)}" if port else ""
        kid = self.kernel_id
        user = q(self.cfg["user"]) if self.cfg.get("user") else f"$(stat -c %u:%g {q(on_host)})"
        # one round trip: the home (0700) with token, control.json and the connection file, owned
        # by the container's user when it is numeric; prints the home's path and that user
        script = (f'umask 077 && H="$HOME"/{q(HOMES + "/" + Path(self.cfg["home"]).name)} && R="$H/run/{kid}" && '
                  f'K="$HOME"/{q(TOKENS)} && mkdir -p "$R" "$H/spool" "$K" && rm -f "$H/token" && '
                  f'IFS= read -r T && printf %s "$T" > "$K/{kid}" && '
                  f'IFS= read -r C && printf %s "$C" > "$H/control.json" && cat > "$R/kernel-{kid}.json" && '
                  f'U={user} && case "$U" in *[!0-9:]*|"") ;; *) chown "$U" "$H" "$H/spool" "$K/{kid}" '
                  f'"$H/control.json" "$H/run" "$R" "$R/kernel-{kid}.json";; esac && printf "%s\\n%s\\n" "$H" "$U"')
        out = ssh.run(script, input=(token + "\n" + json.dumps({"url": self.url or None}) + "\n"
                                     + json.dumps(conn)).encode(), timeout=60).stdout.decode().splitlines()
        if len(out) != 2 or not out[0].startswith("/"):
            raise Unavailable(f"setting up the kernel's home on {self.where} answered {out!r}", where=self.where)
        self.home = out[0]
        return {"user": out[1], "project_on_host": on_host}

    def read_ports(self, running: Any, timeout: float = 120) -> dict[str, int]:
        """The ports the kernel bound on the host (ipykernel writes them back into its file)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.tunnel.ssh.run(f"cat {q(self.connection_file)}", check=False, timeout=30).stdout
            try:
                info = json.loads(out)
            except ValueError:
                info = {}
            if all(info.get(p) for p in PORTS):
                return {p: int(info[p]) for p in PORTS}
            if not running():
                raise Unavailable(f"the kernel's container on {self.where} exited at start", where=self.where)
            time.sleep(0.1)
        raise Unavailable(f"the kernel on {self.where} did not bind its ports", where=self.where)

    def forward(self, remote: dict[str, int]) -> dict[str, int]:
        """Local loopback ports for the kernel's ports (the same ones again after a restart)."""
        self.local_ports = {p: self.tunnel.forward(remote[p], self.local_ports.get(p)) for p in PORTS}
        return self.local_ports

    def cleanup(self, restart: bool) -> None:
        """The run folder gone; on shutdown the connection and every forward closed too."""
        if self.tunnel.alive and self.home:
            try:
                gone = f" {q(self.token_file)}" if not restart else ""
                self.tunnel.ssh.run(f"rm -rf {q(self.run_dir)}{gone}", check=False, timeout=30)
            except Exception:  # noqa: BLE001 - the host went away: nothing more to remove there
                pass
        if restart:
            self.tunnel.cancel_forwards()
            return
        if self.client is not None:
            client, self.client = self.client, None
            client.close()
        self.tunnel.close()


def _file_url(control_home: str) -> str | None:
    try:
        return json.loads((Path(control_home) / "control.json").read_text()).get("url")
    except (OSError, ValueError, AttributeError):
        return None
