"""Remote Docker, for real: a docker target with `docker_host = ssh://root@127.0.0.2:PORT`.

The "remote" host is the session's sshd on 127.0.0.2 whose logins find the test dockerd
(tests/support/remote_docker.py), so Docker's ssh:// connection (`docker system dial-stdio` on the
host) is the only way labwork reaches that daemon here. The container's kernel binds the host's
loopback with ports it picks; the kernel manager connects to other ports, on this machine's
loopback, that only the kernel's SSH connection listens on; LABWORK_URL in the container is the
control plane reverse-forwarded to the host's loopback.
"""
from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ControlPlane, wait_for
from tests.support.docker_host import BASE_IMAGE, DockerHost, docker_host  # noqa: F401 - the fixture
from tests.support.provisioned import ProvisionedKernel, check_kernel_credential, member_token, started_kernel
from tests.support.remote_docker import docker_ssh_host, docker_url  # noqa: F401 - the fixture
from tests.support.ssh_host import SshHost

pytestmark = pytest.mark.slow


def _target(h: SshHost, **extra: object) -> dict:
    return {"image": BASE_IMAGE, "docker_host": docker_url(h), "key_file": str(h.key_file),
            "known_hosts": str(h.known_hosts), **extra}


@pytest.fixture(scope="module")
def rdproject(docker_ssh_host: SshHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # noqa: F811
    from labwork.project import attach_target, init_project
    home = tmp_path_factory.mktemp("rd-home")
    root = tmp_path_factory.mktemp("rd") / "irisproj"
    init_project(root, "myIris")
    (root / "data.csv").write_text("sepal,petal\n5.1,1.4\n")
    attach_target(root, "docker", "far", _target(docker_ssh_host))
    cp = ControlPlane(home).start()
    env = {"LABWORK_HOME": str(home), "LABWORK_PROJECT_DIR": str(root), "LABWORK_URL": cp.url}
    prep = cp.cli("experiment", "prepare", "--runconfig", "far", "--project", str(root), timeout=900)
    try:
        yield {"root": root, "home": home, "cp": cp, "env": env, "prepare": prep.stdout}
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def rdkernel(rdproject: dict) -> Iterator[ProvisionedKernel]:
    k = ProvisionedKernel("labwork-far", rdproject["env"] | {"JPY_SESSION_NAME": str(rdproject["root"] / "far.ipynb")})
    yield k
    k.shutdown()


def _listeners(pid: int) -> set[int]:
    """Ports on this machine's loopback that process `pid` listens on (from `ss -ltnp`)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return {int(m.group(1)) for line in out.splitlines() if f"pid={pid}," in line
            for m in [re.search(r"127\.0\.0\.1:(\d+)\s", line)] if m}


def _ssh_processes(marker: str) -> list[str]:
    """ssh clients whose command line holds `marker`."""
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split()[1:2] and line.split()[1].endswith("ssh")]


def test_prepare_builds_on_the_remote_daemon(rdproject: dict, docker_host: DockerHost) -> None:  # noqa: F811
    assert "ready: image labwork-kernel/far:" in rdproject["prepare"]
    tag = rdproject["prepare"].split("ready: image ", 1)[1].split()[0]
    assert docker_host.image_exists(tag)


def test_kernel_ports_and_control_plane_go_through_the_tunnel(rdkernel: ProvisionedKernel, rdproject: dict,
                                                             docker_host: DockerHost,  # noqa: F811
                                                             docker_ssh_host: SshHost) -> None:  # noqa: F811
    assert rdkernel.run("1+1").text.strip() == "2"
    prov = rdkernel.km.provisioner
    remote = prov._remote
    assert remote is not None and remote.tunnel.alive
    [cid] = docker_host.containers(label=f"labwork.kernel={rdkernel.km.kernel_id}")
    assert prov.container_id.startswith(cid)
    # the ports the kernel bound on the host, from its connection file there
    inner = json.loads(docker_ssh_host.ssh(f"cat {remote.connection_file}").stdout)
    info = rdkernel.km.get_connection_info()
    ports = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
    assert info["ip"] == "127.0.0.1" and inner["ip"] == "127.0.0.1"
    assert {info[p] for p in ports}.isdisjoint({inner[p] for p in ports})
    # what the kernel manager connects to is listened on by the kernel's ssh, nothing else
    assert {info[p] for p in ports} <= _listeners(remote.tunnel.pid)
    res = rdkernel.run("import os\nprint(os.environ['LABWORK_URL'])\nprint(os.getcwd())\n"
                       "print(open('data.csv').read())")
    url = res.stdout.split()[0]
    assert url == remote.url and url != rdproject["cp"].url
    assert int(url.rsplit(":", 1)[1]) in remote.tunnel.reverses
    assert str(rdproject["root"]) in res.stdout and "sepal,petal" in res.stdout


def test_run_history_and_upload_arrive_through_the_reverse_tunnel(rdkernel: ProvisionedKernel,
                                                                   rdproject: dict) -> None:
    cp = rdproject["cp"]
    assert rdkernel.run("%labwork history on").status == "ok"
    assert rdkernel.run("from labwork import get_logger\nget_logger().log('acc', 0.75)").status == "ok"
    up = rdkernel.run("import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/far.txt', 'w').write('f')\n"
                      "%labwork upload outputs/far.txt")
    assert up.status == "ok", up.text
    assert rdkernel.run("%labwork history off").status == "ok"

    def found():
        for r in cp.runs(project=str(rdproject["root"])):
            d = cp.request("GET", f"/api/runs/{r['id']}")
            if d["runconfig"] == "far" and len(d["entries"]) >= 2 and d["artifacts"]:
                return d
        return None
    run = wait_for(found, timeout=60, what="the remote Docker kernel's run")
    assert {v["name"] for v in run["values"]} == {"acc"} and run["artifacts"][0]["path"] == "outputs/far.txt"
    # nothing spooled (the kernel's spool holds its lock only): the records went through the tunnel
    spooled = rdkernel.run("import glob, os\nprint(glob.glob(os.environ['LABWORK_HOME'] + '/spool/*.jsonl'))")
    assert spooled.stdout.strip() == "[]"


def test_a_members_remote_container_holds_only_their_token_and_its_runs_are_theirs(rdproject: dict) -> None:
    """A kernel of bob's server in a container on the remote daemon: bob's token in a file outside
    the shared home there, mounted read-only into this container alone; the control plane's token
    nowhere in its home; what it records is bob's run."""
    token = member_token(rdproject["cp"], rdproject["root"], "bob")
    with started_kernel("labwork-far", rdproject["env"] | {
            "LABWORK_TOKEN": token, "JPY_SESSION_NAME": str(rdproject["root"] / "bob.ipynb")}) as k:
        check_kernel_credential(k, rdproject["cp"], rdproject["root"], "far", token, "bob")


def test_shutdown_closes_the_tunnel_and_removes_the_container(rdproject: dict,
                                                              docker_host: DockerHost) -> None:  # noqa: F811
    k = ProvisionedKernel("labwork-far", rdproject["env"])
    kid = k.km.kernel_id
    remote = k.km.provisioner._remote
    pid, ports, control = remote.tunnel.pid, set(remote.local_ports.values()), remote.tunnel.ssh.control_path
    assert k.run("6*7").text.strip() == "42"
    assert docker_host.containers(label=f"labwork.kernel={kid}") and _listeners(pid) >= ports
    k.shutdown()
    assert not docker_host.containers(label=f"labwork.kernel={kid}")
    assert not docker_host.docker("ps", "-aq", "--filter", f"label=labwork.kernel={kid}").stdout.strip()
    assert not Path(f"/proc/{pid}").exists() and not Path(control).exists()
    assert not _ssh_processes(Path(control).name)
    assert not _listeners_any(ports)


def _listeners_any(ports: set[int]) -> set[int]:
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    open_ = {int(m.group(1)) for m in re.finditer(r"127\.0\.0\.1:(\d+)\s", out)}
    return open_ & ports


def test_restart_keeps_the_local_ports(rdproject: dict, docker_host: DockerHost) -> None:  # noqa: F811
    k = ProvisionedKernel("labwork-far", rdproject["env"])
    try:
        before = dict(k.km.provisioner._remote.local_ports)
        [first] = docker_host.containers(label=f"labwork.kernel={k.km.kernel_id}")
        k.km.restart_kernel(now=True)
        k.kc.wait_for_ready(timeout=120)
        assert k.run("3+4").text.strip() == "7"
        [second] = docker_host.containers(label=f"labwork.kernel={k.km.kernel_id}")
        assert second != first and k.km.provisioner._remote.local_ports == before
    finally:
        k.shutdown()


def test_copied_project_is_mounted_at_the_project_path(rdproject: dict, docker_ssh_host: SshHost) -> None:  # noqa: F811
    from labwork.project import attach_target
    from labwork.kernels.remote_copy import copy_path
    root = rdproject["root"]
    attach_target(root, "docker", "farcopy", _target(docker_ssh_host, project_files="copy"))
    rdproject["cp"].cli("experiment", "prepare", "--runconfig", "farcopy", "--project", str(root), timeout=900)
    k = ProvisionedKernel("labwork-farcopy", rdproject["env"])
    try:
        res = k.run("import os\nprint(os.getcwd())\nprint(open('data.csv').read())\nopen('made-inside.txt', 'w').write('x')")
        assert res.status == "ok", res.text
        assert str(root) in res.stdout and "sepal,petal" in res.stdout
        # written into the host's copy, not into this machine's project folder
        assert not (root / "made-inside.txt").exists()
        assert docker_ssh_host.ssh(f"test -f ~/{copy_path(str(root))}/made-inside.txt").returncode == 0
    finally:
        k.shutdown()
        docker_ssh_host.ssh(f"rm -rf ~/{copy_path(str(root))}")


def _prepare(rdproject: dict, name: str, target: dict) -> subprocess.CompletedProcess:
    from labwork.project import attach_target
    attach_target(rdproject["root"], "docker", name, target)
    return rdproject["cp"].cli("experiment", "prepare", "--runconfig", name, "--project",
                               str(rdproject["root"]), check=False)


def test_unknown_host_key_is_refused_with_how_to_trust(rdproject: dict, docker_ssh_host: SshHost,  # noqa: F811
                                                      tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    out = _prepare(rdproject, "farstranger", _target(docker_ssh_host, known_hosts=str(empty)))
    text = out.stdout + out.stderr
    assert out.returncode == 5 and "host key of 127.0.0.2" in text and "not known" in text
    assert f"ssh-keyscan -p {docker_ssh_host.port} 127.0.0.2 >> {empty}" in " ".join(text.split())
    assert "Traceback" not in text and not _ssh_processes(str(empty))


def test_auth_refused_and_host_unreachable(rdproject: dict, docker_ssh_host: SshHost, tmp_path: Path) -> None:  # noqa: F811
    from tests.support import free_port
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    refused = _prepare(rdproject, "farnokey", _target(docker_ssh_host, key_file=str(other)))
    assert refused.returncode == 5 and "refused the SSH login" in refused.stdout + refused.stderr
    gone = docker_ssh_host.__class__(**{**docker_ssh_host.__dict__, "port": free_port("127.0.0.2")})
    down = _prepare(rdproject, "farnohost", _target(gone))
    assert down.returncode == 6 and "cannot reach" in down.stdout + down.stderr
    assert "Traceback" not in refused.stderr + down.stderr
    assert not _ssh_processes(str(other)) and not _ssh_processes(f"-p {gone.port} ")


def test_kernel_start_on_an_unknown_host_is_refused_and_leaves_nothing(rdproject: dict, docker_ssh_host: SshHost,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    """The image is prepared (as `far`'s); the host key is then not trusted at kernel start."""
    from labwork.errors import Forbidden
    from labwork.project import attach_target
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    root = rdproject["root"]
    attach_target(root, "docker", "farlater", _target(docker_ssh_host))
    rdproject["cp"].cli("experiment", "prepare", "--runconfig", "farlater", "--project", str(root), timeout=900)
    toml = root / ".labwork" / "compute" / "farlater.toml"
    toml.write_text(toml.read_text().replace(str(docker_ssh_host.known_hosts), str(empty)))
    with pytest.raises(Forbidden, match="not known") as err:
        ProvisionedKernel("labwork-farlater", rdproject["env"])
    assert "ssh-keyscan" in (err.value.hint or "")
    assert not _ssh_processes(str(empty))
