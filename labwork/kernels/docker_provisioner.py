"""A jupyter_client kernel provisioner that runs the kernel in a Docker container.

Our own, on `jupyter_client.provisioning`, rather than gateway_provisioners' DockerProvisioner,
which (0.5.0) copies the server's whole environment into the container (a secret leak), refuses
root launches by default, needs a bridge network plus a response listener on the machine's public
address, and knows no resource limits or project mounts. This one is a LocalProvisioner whose
process is a container:

* the connection file (ports on 127.0.0.1) goes into a per-kernel folder mounted read-only, and
  the container uses host networking, so the kernel's ports and the control plane (run history)
  are on the same loopback as for a local kernel;
* the environment is the kernel spec's `env` only (labwork's variables and the run configuration's
  `env`) plus the notebook path: never the server's own environment;
* the project folder is mounted at the same path and is the working directory; LABWORK_HOME in
  the container is a per-run-configuration folder mounted at the same path; its `spool` is the
  control plane's own spool folder, so records spooled while the plane was away survive the
  container and the plane replays them (exactly once: records carry ids);
* the kernel's credential is its user's personal token in a file of its own, mounted read-only
  (labwork.kernels.credentials): never the control plane's token, never another kernel's;
* memory/cpus limits from the target; the user is the target's or the project folder's owner;
* interrupt is SIGINT through docker-init (`init=True`); shutdown removes the container; a dead
  kernel's reason (exit code, out of memory) is logged and kept in `end_reason`.

A daemon on another host (`docker_host = "ssh://..."`) is reached over the kernel's own SSH
connection, which also carries the kernel's ports and the control plane (labwork.kernels.
remote_docker: the home, project and ports are on that host).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner

from labwork import envvars
from labwork.errors import NotFound, Unavailable
from labwork.kernels.containers import KERNEL_LABEL, PROJECT_LABEL, SERVER_LABEL
from labwork.kernels.credentials import CONTAINER_TOKEN, kernel_token, write_token_file
from labwork.kernels.end_report import report_end
from labwork.kernels.provisioned_ends import end_reason, provisioned_end
from labwork.kernels.remote_docker import PORTS, RemoteContainer, is_ssh

PASSED_THROUGH = ("JPY_SESSION_NAME",)  # what jupyter_server adds that the kernel uses


def container_env(spec_env: dict[str, str], launch_env: dict[str, str], home: str) -> dict[str, str]:
    """The container's environment: the spec's variables, the notebook path, the kernel's home."""
    env = {k: v for k, v in spec_env.items() if k != "PYTHONPATH"}
    env.update({k: launch_env[k] for k in PASSED_THROUGH if k in launch_env})
    env["LABWORK_HOME"] = home
    return env


def _owner(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_uid}:{st.st_gid}"


def _numeric(user: str) -> tuple[int, int] | None:
    uid, _, gid = user.partition(":")
    if uid.isdigit() and (not gid or gid.isdigit()):
        return int(uid), int(gid or uid)
    return None


class DockerKernelProvisioner(LocalProvisioner):  # type: ignore[misc]
    """Starts the kernel command inside a container of the run configuration's image."""

    container_id: str | None = None
    end_reason: str | None = None
    _client: Any = None
    _exit: int | None = None
    _stopping = False
    _remote: RemoteContainer | None = None  # docker_host = ssh://...

    # --- configuration from the kernel spec's metadata.kernel_provisioner.config
    def __init__(self, **kwargs: Any) -> None:
        # jupyter_client passes the spec's provisioner config as keyword arguments
        own = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("kernel_id", "kernel_spec", "parent", "config", "log")}
        super().__init__(**kwargs)
        self.provisioner_config = own

    def _cfg(self, key: str, default: Any = None) -> Any:
        return (self.provisioner_config or {}).get(key, default)

    def _docker(self) -> Any:
        if self._client is None and is_ssh(self._cfg("docker_host")):
            if self._remote is None:
                self._remote = RemoteContainer(self.provisioner_config, self.kernel_id or os.urandom(6).hex())
            self._client = self._remote.connect()
        if self._client is None:
            from labwork.kernels.docker_images import docker_client
            self._client = docker_client(self._cfg("docker_host"))
        return self._client

    @property
    def has_process(self) -> bool:
        return self.container_id is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        client = await asyncio.to_thread(self._docker)
        image = self._cfg("image")
        import docker.errors
        try:
            await asyncio.to_thread(client.images.get, image)
        except docker.errors.ImageNotFound:
            rc = self._cfg("runconfig", "?")
            raise NotFound(f"the image {image} of run configuration '{rc}' is not on the Docker daemon "
                           f"at {self._cfg('docker_host') or 'the default socket'}",
                           hint=f"labwork experiment prepare --runconfig {rc}",
                           hints={"dashboard": f"press Prepare in the row of '{rc}' on the Compute page"}) from None
        return await super().pre_launch(**kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        if is_ssh(self._cfg("docker_host")):
            info = await asyncio.to_thread(self._launch_remote, cmd, dict(kwargs.get("env") or {}))
            self.connection_info = info
            return info
        km = self.parent
        project = self._cfg("project")
        home = self._cfg("home")
        user = self._cfg("user") or _owner(project)
        ids = _numeric(user)
        run_dir = Path(home) / "run" / (self.kernel_id or "kernel")
        conn_file = Path(km.connection_file) if km is not None else None
        self._prepare_home(Path(home), run_dir, ids)
        # named as jupyter_client names it: run history reads the kernel id from this name
        inner_conn = str(run_dir / f"kernel-{self.kernel_id or 'kernel'}.json")
        if conn_file is not None and conn_file.exists():
            shutil.copyfile(conn_file, inner_conn)
            if ids:
                os.chown(inner_conn, *ids)
            os.chmod(inner_conn, 0o600)
            cmd = [inner_conn if a == str(conn_file) else a for a in cmd]
        launch_env = dict(kwargs.get("env") or {})
        env = container_env(dict(self.kernel_spec.env or {}), launch_env, home)
        volumes = {project: {"bind": project, "mode": "rw"}, home: {"bind": home, "mode": "rw"}}
        token_file = write_token_file(self._token_path(), kernel_token(launch_env, self._cfg("control_home")), ids)
        volumes[str(token_file)] = {"bind": CONTAINER_TOKEN, "mode": "ro"}  # its own token, no other kernel's
        env[envvars.TOKEN_FILE] = CONTAINER_TOKEN
        spool = Path(self._cfg("control_home", "")) / "spool"
        if self._cfg("control_home"):
            # the control plane's own spool folder: what a dead container left is replayed by it
            from labwork.private import private_dir
            private_dir(spool)
            volumes[str(spool)] = {"bind": f"{home}/spool", "mode": "rw"}
        await asyncio.to_thread(self._run, self._options(cmd, env, volumes, user, project))
        return self.connection_info

    def _options(self, cmd: list[str], env: dict[str, str], volumes: dict[str, Any], user: str,
                 project: str) -> dict[str, Any]:
        options: dict[str, Any] = {
            "command": cmd, "environment": env, "volumes": volumes, "working_dir": project,
            "user": user, "network_mode": "host", "init": True, "detach": True,
            "labels": {KERNEL_LABEL: self.kernel_id or "", PROJECT_LABEL: project,
                       "labwork.runconfig": self._cfg("runconfig", ""),
                       **({SERVER_LABEL: server} if (server := envvars.get(envvars.SERVER_ID)) else {})},
            "name": f"labwork-kernel-{(self.kernel_id or os.urandom(6).hex())[:13]}",
            "pids_limit": 4096,
        }
        if self._cfg("memory"):
            options["mem_limit"] = self._cfg("memory")
        if self._cfg("cpus"):
            options["nano_cpus"] = int(float(self._cfg("cpus")) * 1e9)
        return options

    def _run(self, options: dict[str, Any]) -> None:
        client = self._docker()
        try:
            container = client.containers.run(self._cfg("image"), **options)
        except Exception as exc:  # noqa: BLE001 - the daemon's words are the message
            from labwork.kernels.docker_images import _short
            raise Unavailable(f"the container for run configuration '{self._cfg('runconfig')}' did not "
                              f"start: {_short(exc)}") from exc
        self.container_id = container.id
        self._stopping = False
        self.end_reason = None
        self._exit = None
        self.log.info("labwork: kernel %s runs in container %s (%s)", self.kernel_id,
                      container.short_id, self._cfg("image"))

    def _launch_remote(self, cmd: list[str], launch_env: dict[str, str]) -> dict[str, Any]:
        """The container on the ssh:// host; its ports forwarded here (labwork.kernels.remote_docker)."""
        self._docker()
        remote = self._remote
        assert remote is not None
        try:
            return self._start_remote(remote, cmd, launch_env)
        except BaseException:  # nothing left on the host: the container, the connection
            if self.container_id:
                self._docker().api.remove_container(self.container_id, force=True)
                self.container_id = None
            remote.cleanup(restart=False)
            self._client, self._remote = None, None
            raise

    def _start_remote(self, remote: RemoteContainer, cmd: list[str], launch_env: dict[str, str]) -> dict[str, Any]:
        km = self.parent
        conn = {"ip": "127.0.0.1", "transport": "tcp", **{p: 0 for p in PORTS}, "key": km.session.key.decode(),
                "signature_scheme": km.session.signature_scheme, "kernel_name": km.kernel_name}
        spec_env = dict(self.kernel_spec.env or {})
        placed = remote.prepare(spec_env.get("LABWORK_URL"), self._cfg("control_home", ""), conn,
                                kernel_token(launch_env, self._cfg("control_home")))
        cmd = [remote.connection_file if a == str(km.connection_file) else a for a in cmd]
        env = container_env(spec_env, launch_env, remote.home)
        env[envvars.TOKEN_FILE] = CONTAINER_TOKEN
        if remote.url:
            env["LABWORK_URL"] = remote.url
        project = self._cfg("project")
        volumes = {placed["project_on_host"]: {"bind": project, "mode": "rw"},
                   remote.home: {"bind": remote.home, "mode": "rw"},
                   remote.token_file: {"bind": CONTAINER_TOKEN, "mode": "ro"}}
        self._run(self._options(cmd, env, volumes, placed["user"], project))
        ports = remote.read_ports(lambda: self._state() is None)
        local = remote.forward(ports)
        self.log.info("labwork: kernel %s in container %s on %s, ports %s forwarded to %s", self.kernel_id,
                      (self.container_id or "")[:12], remote.where, ports, local)
        return {**conn, **local, "key": conn["key"].encode()}

    def _prepare_home(self, home: Path, run_dir: Path, ids: tuple[int, int] | None) -> None:
        """The container's LABWORK_HOME: a control.json copy, the spool, 0700/0600. No token: each
        kernel has its own (labwork/kernels/credentials.py); one an earlier version left is removed."""
        from labwork.private import private_dir, write_private
        private_dir(home)
        private_dir(run_dir)
        source = Path(self._cfg("control_home", ""))
        if (source / "control.json").is_file():
            write_private(home / "control.json", (source / "control.json").read_bytes())
        (home / "token").unlink(missing_ok=True)
        private_dir(home / "spool")
        if ids:
            for path in (home, home / "spool", home / "control.json", run_dir.parent, run_dir):
                if path.exists():
                    os.chown(path, *ids)

    def _token_path(self) -> Path:
        """Where this kernel's token file is kept: outside the home the container mounts."""
        return Path(self._cfg("control_home", "")) / "kernel-tokens" / (self.kernel_id or "kernel") / "token"

    async def poll(self) -> int | None:
        if self.container_id is None:
            return self._exit if self._exit is not None else 0
        state = await asyncio.to_thread(self._state)
        if state is None:
            return None
        return state

    def _state(self) -> int | None:
        """None while the container runs, else its exit code (and the reason noted)."""
        import docker.errors
        try:
            c = self._docker().containers.get(self.container_id)
        except docker.errors.NotFound:
            self._note_end(-1, "the container was removed")
            return -1
        except Exception as exc:  # noqa: BLE001 - the daemon went away
            self._note_end(-1, f"the Docker daemon stopped answering: {exc}")
            return -1
        st = c.attrs.get("State", {})
        if st.get("Running"):
            return None
        code = int(st.get("ExitCode", -1))
        end = provisioned_end(self.kernel_id, exit_code=code, where=f"container {(self.container_id or '')[:12]}",
                              run_config=self._cfg("runconfig"), oom=bool(st.get("OOMKilled")),
                              memory=self._cfg("memory_limit") or self._cfg("memory"))
        reported = self.end_reason is None and not self._stopping
        if reported:
            report_end(end, self.log)  # its own log line says the end
        self._note_end(code, end_reason(end) + (f" ({st['Error']})" if st.get("Error") else ""), logged=reported)
        return code

    async def shutdown_requested(self, restart: bool = False) -> None:
        self._stopping = True
        await super().shutdown_requested(restart=restart)

    def _note_end(self, code: int, reason: str, *, logged: bool = False) -> None:
        """Keep the first end seen; log it unless `report_end` already did."""
        if self.end_reason is None:
            self.end_reason = reason
            self._exit = code
            if not logged:
                (self.log.info if self._stopping else self.log.error)(
                    "labwork: kernel %s in container %s ended: %s", self.kernel_id, (self.container_id or "")[:12], reason)

    async def wait(self) -> int | None:
        while True:
            code = await self.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.1)

    async def send_signal(self, signum: int) -> None:
        if self.container_id is None:
            return
        import docker.errors
        try:
            await asyncio.to_thread(self._docker().api.kill, self.container_id, signal.Signals(signum).name)
        except docker.errors.APIError as exc:
            self.log.warning("labwork: signal %s to container %s: %s", signum, self.container_id[:12], exc)

    async def kill(self, restart: bool = False) -> None:
        self._stopping = True
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return min(recommended, 5.0)

    async def cleanup(self, restart: bool = False) -> None:
        """Remove the container and its connection copy (the kernel's home stays: the spool)."""
        if self.container_id is not None:
            cid, self.container_id = self.container_id, None
            try:
                await asyncio.to_thread(self._docker().api.remove_container, cid, force=True)
            except Exception as exc:  # noqa: BLE001 - already gone, or the daemon is down
                self.log.warning("labwork: removing container %s: %s", cid[:12], exc)
        home = self._cfg("home")
        if home and self.kernel_id:
            shutil.rmtree(Path(home) / "run" / self.kernel_id, ignore_errors=True)
        if self._cfg("control_home") and self.kernel_id and not restart:
            shutil.rmtree(self._token_path().parent, ignore_errors=True)
        if self._remote is not None:  # its run folder there; at shutdown its connection and forwards
            await asyncio.to_thread(self._remote.cleanup, restart)
            if not restart:
                self._client, self._remote = None, None
        await super().cleanup(restart=restart)
        if not restart and self._client is not None:
            self._client.close()
            self._client = None

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update({"container_id": self.container_id, "end_reason": self.end_reason})
        if self._remote is not None:
            info.update({"host": self._remote.where, "tunnel_pid": self._remote.tunnel.pid})
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.container_id = provisioner_info.get("container_id")
        self.end_reason = provisioner_info.get("end_reason")

