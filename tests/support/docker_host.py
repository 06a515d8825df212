"""A real Docker daemon for the tests, and the base image the Docker kernels are built on.

No registry is reachable from these machines, so nothing is pulled: the base image is made from
Debian's packages (`debootstrap` -> `docker import` -> `docker build --network host`). The daemon
is Debian's `dockerd`, started here by hand (nothing else starts it) with its own data root under
a per-machine cache folder, so the base image is built once per machine and every later session
finds it. The daemon gets its own socket, no bridge and no iptables rules: kernels use host
networking, and the machine's own Docker (if any) is left alone. A session that found a daemon
already answering on the socket reuses it and leaves it running; one it started, it stops.

Tests that need this skip when not root or when the packages are missing (scripts/setup.sh
installs them as root); `LABWORK_TEST_DOCKER_REQUIRED=1` makes that a failure instead.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.waiting import wait_for

BASE_IMAGE = "labwork-test-base:bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Short on purpose: unix socket paths are limited to 108 bytes and containerd nests its own.
EXEC_ROOT = Path("/tmp/lw-dockerd")


def cache_dir() -> Path:
    """Per-machine cache (the daemon's data root, so images survive sessions)."""
    raw = os.environ.get("LABWORK_TEST_CACHE")
    if raw:
        return Path(raw)
    if os.geteuid() == 0:
        return Path("/var/cache/labwork-tests")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "labwork-tests"


def missing(what: str) -> None:
    """Skip (or, with LABWORK_TEST_DOCKER_REQUIRED=1, fail) saying what is missing."""
    msg = f"Docker kernel tests need {what}"
    if os.environ.get("LABWORK_TEST_DOCKER_REQUIRED") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def docker_cli() -> str | None:
    return shutil.which("docker")


@dataclass
class DockerHost:
    """A running test daemon: `docker(...)` runs the CLI against it."""

    socket: Path
    started: bool  # by this session (so it stops it)
    pid: int | None = None
    driver: str = "overlay2"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, check: bool = True, input: bytes | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([docker_cli() or "docker", "-H", self.url, *args], input=input,
                              capture_output=True, check=check, timeout=timeout)

    def containers(self, label: str = "labwork.kernel") -> list[str]:
        """Ids of running containers with `label` (what `docker ps` shows of ours)."""
        out = self.docker("ps", "-q", "--filter", f"label={label}").stdout.decode()
        return out.split()

    def image_exists(self, ref: str) -> bool:
        return self.docker("image", "inspect", ref, check=False).returncode == 0


def _answers(socket: Path) -> bool:
    if not socket.exists():
        return False
    r = subprocess.run([docker_cli() or "docker", "-H", f"unix://{socket}", "version", "--format",
                        "{{.Server.Version}}"], capture_output=True, timeout=30)
    return r.returncode == 0


def _mounts_under(prefix: Path) -> list[str]:
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 1 and (parts[1] == str(prefix) or parts[1].startswith(str(prefix) + "/")):
            out.append(parts[1])
    return sorted(out, key=len, reverse=True)


def _start(cache: Path, driver: str) -> tuple[subprocess.Popen, Path]:
    socket = cache / "docker.sock"
    data = cache / f"data-{driver}"
    data.mkdir(parents=True, exist_ok=True)
    EXEC_ROOT.mkdir(parents=True, exist_ok=True)
    log = open(cache / "dockerd.log", "ab")  # noqa: SIM115 - the daemon's own log, kept
    cmd = [shutil.which("dockerd") or "/usr/sbin/dockerd", "--data-root", str(data),
           "--exec-root", str(EXEC_ROOT), "--pidfile", str(cache / "dockerd.pid"),
           "-H", f"unix://{socket}", "--storage-driver", driver,
           "--bridge", "none", "--iptables=false", "--ip-masq=false", "--ip-forward=false"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, socket


def start_daemon() -> DockerHost:
    """Reuse a test daemon answering on the cache's socket, or start one (overlay2, else vfs)."""
    if os.geteuid() != 0:
        missing("root (a Docker daemon is started for the session)")
    if not shutil.which("dockerd") and not Path("/usr/sbin/dockerd").exists():
        missing("Debian's docker.io (scripts/setup.sh test installs it as root)")
    if not docker_cli():
        missing("the docker client (Debian's docker.io has one)")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "dockerd.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions never start two daemons on one data root
        socket = cache / "docker.sock"
        if _answers(socket):
            return DockerHost(socket=socket, started=False)
        last = ""
        for driver in ("overlay2", "vfs"):
            proc, socket = _start(cache, driver)
            try:
                wait_for(lambda: proc.poll() is not None or _answers(socket), timeout=60,
                         what="the test dockerd to answer")
            except AssertionError as exc:
                last = str(exc)
            if proc.poll() is None and _answers(socket):
                return DockerHost(socket=socket, started=True, pid=proc.pid, driver=driver)
            _stop_pid(proc.pid)
            last = (cache / "dockerd.log").read_text(errors="replace")[-2000:] or last
        pytest.fail(f"the test dockerd did not start; its log ends:\n{last}")


def _stop_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)


def stop_daemon(host: DockerHost) -> None:
    """Stop a daemon this session started; unmount what it leaves (its netns, overlay mounts)."""
    if not host.started or host.pid is None:
        return
    for cid in host.docker("ps", "-aq", "--filter", "label=labwork.kernel", check=False).stdout.split():
        host.docker("rm", "-f", cid.decode(), check=False)
    _stop_pid(host.pid)
    for prefix in (EXEC_ROOT, cache_dir()):
        for mnt in _mounts_under(prefix):
            subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(EXEC_ROOT, ignore_errors=True)
    host.socket.unlink(missing_ok=True)


def _mirror() -> str:
    """The Debian mirror apt already uses."""
    for src in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in src.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    sl = Path("/etc/apt/sources.list")
    if sl.exists():
        for line in sl.read_text().splitlines():
            if line.startswith("deb ") and "debian" in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


BASE_DOCKERFILE = """\
FROM labwork-test-rootfs:bookworm
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \\
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    LANG=C.UTF-8
RUN python3 -m venv /tmp/check-venv && rm -rf /tmp/check-venv
CMD ["python3"]
"""


def ensure_base_image(host: DockerHost, work: Path) -> str:
    """The test base image (python3 + venv on Debian bookworm), built once per machine."""
    if host.image_exists(BASE_IMAGE):
        return BASE_IMAGE
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        missing("Debian's debootstrap (scripts/setup.sh test installs it as root)")
    with open(cache_dir() / "base-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if host.image_exists(BASE_IMAGE):
            return BASE_IMAGE
        root = work / "rootfs"
        try:
            if not host.image_exists("labwork-test-rootfs:bookworm"):
                r = subprocess.run([debootstrap, "--variant=minbase", "--include=python3,python3-venv",
                                    "bookworm", str(root), _mirror()], capture_output=True, timeout=1200)
                if r.returncode != 0:
                    pytest.fail("debootstrap failed: " + r.stdout.decode(errors="replace")[-1500:]
                                + r.stderr.decode(errors="replace")[-1500:])
                tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
                r = subprocess.run([docker_cli() or "docker", "-H", host.url, "import", "-",
                                    "labwork-test-rootfs:bookworm"], stdin=tar.stdout, capture_output=True)
                tar.wait()
                if r.returncode != 0:
                    pytest.fail("docker import failed: " + r.stderr.decode(errors="replace"))
        finally:
            for mnt in _mounts_under(root):
                subprocess.run(["umount", "-l", mnt], capture_output=True)
            shutil.rmtree(root, ignore_errors=True)
        ctx = work / "base-build"
        ctx.mkdir(parents=True, exist_ok=True)
        (ctx / "Dockerfile").write_text(BASE_DOCKERFILE)
        shutil.copy(CA_BUNDLE, ctx / "ca-certificates.crt")
        r = host.docker("build", "--network", "host", "-t", BASE_IMAGE, str(ctx), check=False)
        if r.returncode != 0:
            pytest.fail("building the base image failed: " + r.stderr.decode(errors="replace")[-2000:])
    return BASE_IMAGE


@pytest.fixture(scope="session")
def docker_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerHost]:
    """The session's test dockerd with the base image built (once per machine)."""
    host = start_daemon()
    try:
        ensure_base_image(host, tmp_path_factory.mktemp("docker-base"))
        yield host
    finally:
        stop_daemon(host)
