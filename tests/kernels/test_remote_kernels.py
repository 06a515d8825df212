"""Remote kernels over SSH, for real: the session's sshd on 127.0.0.2 (this machine, but not
"local" to jupyter_client), an environment prepared on it over SSH, kernels through labwork's SSH
provisioner. The prepared environment and one kernel are shared by the module."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ControlPlane, wait_for
from tests.support.provisioned import (ProvisionedKernel, check_kernel_credential, member_token, prepared_project,
                                      started_kernel)
from tests.support.ssh_host import SshHost, ssh_host  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


def _target(h: SshHost, **extra: object) -> dict:
    return {"host": h.host, "port": h.port, "user": h.user, "key_file": str(h.key_file),
            "known_hosts": str(h.known_hosts), **extra}


@pytest.fixture(scope="module")
def rproject(ssh_host: SshHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # noqa: F811
    with prepared_project(tmp_path_factory, "rk", "remote", "vm", _target(ssh_host)) as project:
        yield project


@pytest.fixture(scope="module")
def rkernel(rproject: dict) -> Iterator[ProvisionedKernel]:
    with started_kernel("labwork-vm", rproject["env"] | {"JPY_SESSION_NAME": str(rproject["root"] / "remote.ipynb"),
                                                          "SERVER_SECRET_TOKEN": "must-not-leak"}) as k:
        yield k


def _remote_pids(h: SshHost, marker: str) -> list[str]:
    """Pids on the host whose command line holds `marker` (the pattern `[m]arker` matches it, not
    the command lines of this search's own shell and ssh, which hold the pattern)."""
    out = h.ssh(f"pgrep -f '[{marker[0]}]{marker[1:]}' || true").stdout
    return out.split()


def test_prepare_over_ssh_is_reused(rproject: dict) -> None:
    assert "ready: 127.0.0.2:" in rproject["prepare"]
    again = rproject["cp"].cli("experiment", "prepare", "--runconfig", "vm", "--project", str(rproject["root"]))
    assert "is up to date" in again.stdout and "reusing it" in again.stdout and "creating" not in again.stdout


def test_remote_kernel_runs_in_the_project_on_the_host(rkernel: ProvisionedKernel, rproject: dict) -> None:
    assert rkernel.run("1+1").text.strip() == "2"
    res = rkernel.run("import os, sys\nprint(open('data.csv').read())\nprint(os.getcwd())\nprint(sys.executable)\n"
                      "print(os.environ.get('SERVER_SECRET_TOKEN'))")
    assert "sepal,petal" in res.stdout and str(rproject["root"]) in res.stdout
    assert ".labwork-remote/envs/" in res.stdout and "must-not-leak" not in res.stdout
    assert rkernel.km.connection_file and rkernel.km.ip == "127.0.0.2"


def test_remote_kernel_reaches_the_plane_through_a_reverse_tunnel(rkernel: ProvisionedKernel,
                                                                   rproject: dict) -> None:
    """LABWORK_URL on the host is the plane reverse-forwarded to the host's loopback by the kernel's
    own SSH connection (the host cannot reach this machine's 127.0.0.1); the history test below
    records and uploads through it."""
    prov = rkernel.km.provisioner
    url = rkernel.run("import os\nprint(os.environ['LABWORK_URL'])").stdout.strip()
    assert url == prov._url and url != rproject["cp"].url and url.startswith("http://127.0.0.1:")
    assert prov._tunnel.reverses == {int(url.rsplit(":", 1)[1]): int(rproject["cp"].url.rsplit(":", 1)[1])}
    assert prov._tunnel.alive and prov.ssh.control_path == prov._tunnel.ssh.control_path


def test_remote_run_history_reaches_the_control_plane(rkernel: ProvisionedKernel, rproject: dict) -> None:
    cp = rproject["cp"]
    assert rkernel.run("%labwork history on").status == "ok"
    assert rkernel.run("from labwork import get_logger\nget_logger().log('loss', 0.5)").status == "ok"
    up = rkernel.run("import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/r.txt', 'w').write('r')\n"
                     "%labwork upload outputs/r.txt")
    assert up.status == "ok", up.text
    assert rkernel.run("%labwork history off").status == "ok"

    def found():
        for r in cp.runs(project=str(rproject["root"])):
            d = cp.request("GET", f"/api/runs/{r['id']}")
            if d["runconfig"] == "vm" and len(d["entries"]) >= 2 and d["artifacts"]:
                return d
        return None
    run = wait_for(found, timeout=60, what="the remote kernel's run")
    assert {v["name"] for v in run["values"]} == {"loss"} and run["artifacts"][0]["path"] == "outputs/r.txt"


def test_a_members_remote_kernel_sends_their_token_and_its_runs_are_theirs(rproject: dict) -> None:
    """A kernel of bob's server on the SSH host: bob's token in a 0600 file of its run folder there
    (sent over the session's input, never on the host's command line), the control plane's token
    nowhere in its home on the host; what it records is bob's run."""
    token = member_token(rproject["cp"], rproject["root"], "bob")
    with started_kernel("labwork-vm", rproject["env"] | {
            "LABWORK_TOKEN": token, "JPY_SESSION_NAME": str(rproject["root"] / "bob.ipynb")}) as k:
        check_kernel_credential(k, rproject["cp"], rproject["root"], "vm", token, "bob", shared_host_user=True)
        mode = k.run("import os\nprint(oct(os.stat(os.environ['LABWORK_TOKEN_FILE']).st_mode & 0o777))").stdout
        assert mode.strip() == "0o600"


def test_remote_interrupt_in_sleep(rkernel: ProvisionedKernel) -> None:
    res = rkernel.run_and_interrupt("import time\nprint('sleeping', flush=True)\ntime.sleep(60)", "sleeping")
    # an uninterrupted sleep would end "ok", not in KeyboardInterrupt
    assert res.status == "error" and (res.error or {}).get("ename") == "KeyboardInterrupt", res.text
    assert rkernel.run("2+2").text.strip() == "4"


def test_remote_shutdown_leaves_no_process(rproject: dict, ssh_host: SshHost) -> None:  # noqa: F811
    k = ProvisionedKernel("labwork-vm", rproject["env"])
    pid = k.km.provisioner.remote_pid
    tunnel = k.km.provisioner._tunnel
    tpid = tunnel.pid
    assert pid and tpid and k.run("6*7").text.strip() == "42"
    assert ssh_host.ssh(f"kill -0 {pid}").returncode == 0
    k.shutdown()
    # gone when shutdown returns (not ~30 s later, as with gateway_provisioners' SSH provisioner)
    assert ssh_host.ssh(f"kill -0 {pid}").returncode != 0
    # and the kernel's SSH connection with its reverse forward
    assert not tunnel.alive and not Path(f"/proc/{tpid}").exists()
    assert not Path(tunnel.ssh.control_path).exists()


def test_a_killed_ssh_side_leaves_nothing_on_the_host(rproject: dict, ssh_host: SshHost) -> None:  # noqa: F811
    """kill -9 of the provisioner's ssh process (as when the Jupyter server dies hard): the host's
    side sees its session end and ends the kernel and what it started, within a bounded wait."""
    import os
    import signal
    k = ProvisionedKernel("labwork-vm", rproject["env"])
    try:
        prov = k.km.provisioner
        pid, kid = prov.remote_pid, k.km.kernel_id
        child = k.run("import subprocess\nchild = subprocess.Popen(['sleep', '600'])\nprint(child.pid)").stdout.strip()
        assert child.isdigit() and ssh_host.ssh(f"kill -0 {pid} && kill -0 {child}").returncode == 0
        assert _remote_pids(ssh_host, kid)  # the kernel and its watcher, found by the kernel's id
        os.kill(prov.proc.pid, signal.SIGKILL)
        wait_for(lambda: not _remote_pids(ssh_host, kid), timeout=30, what="the remote kernel to end")
        wait_for(lambda: ssh_host.ssh(f"kill -0 {child}").returncode != 0, timeout=30,
                 what="the kernel's child process to end")
        assert ssh_host.ssh(f"kill -0 {pid}").returncode != 0
    finally:
        k.shutdown(now=True)


def test_unknown_host_key_is_refused_with_how_to_trust(rproject: dict, ssh_host: SshHost,  # noqa: F811
                                                      tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    from labwork.project import attach_target
    attach_target(rproject["root"], "remote", "stranger", _target(ssh_host, known_hosts=str(empty)))
    out = rproject["cp"].cli("experiment", "prepare", "--runconfig", "stranger", "--project",
                             str(rproject["root"]), check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 5 and "host key of 127.0.0.2" in text and "not known" in text
    flat = " ".join(text.split())
    assert f"ssh-keyscan -p {ssh_host.port} 127.0.0.2 >> {empty}" in flat
    assert "Traceback" not in text


def test_auth_refused_and_host_unreachable(rproject: dict, ssh_host: SshHost, tmp_path: Path) -> None:  # noqa: F811
    import subprocess

    from labwork.project import attach_target
    from tests.support import free_port
    stranger_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger_key)], check=True)
    attach_target(rproject["root"], "remote", "nokey", _target(ssh_host, key_file=str(stranger_key)))
    attach_target(rproject["root"], "remote", "nohost", _target(ssh_host, port=free_port("127.0.0.2")))
    refused = rproject["cp"].cli("experiment", "prepare", "--runconfig", "nokey", "--project",
                                 str(rproject["root"]), check=False)
    assert refused.returncode == 5 and "refused the SSH login" in refused.stdout + refused.stderr
    down = rproject["cp"].cli("experiment", "prepare", "--runconfig", "nohost", "--project",
                              str(rproject["root"]), check=False)
    assert down.returncode == 6 and "cannot reach" in down.stdout + down.stderr
    assert "Traceback" not in refused.stderr + down.stderr


def test_remote_restart(rproject: dict, ssh_host: SshHost) -> None:  # noqa: F811
    k = ProvisionedKernel("labwork-vm", rproject["env"])
    try:
        first = k.km.provisioner.remote_pid
        assert k.run("z = 5").status == "ok"
        k.km.restart_kernel(now=False)
        k.kc.wait_for_ready(timeout=120)
        assert k.run("'z' in dir()").text.strip() == "False"
        assert k.km.provisioner.remote_pid != first
        assert ssh_host.ssh(f"kill -0 {first}").returncode != 0
    finally:
        k.shutdown()


def test_compute_page_state_of_remote_targets(rproject: dict, ssh_host: SshHost) -> None:  # noqa: F811
    from labwork.kernels.target_state import target_state
    from labwork.project import attach_target, load_project
    from tests.support import free_port
    attach_target(rproject["root"], "remote", "offline", _target(ssh_host, port=free_port("127.0.0.2")))
    p = load_project(rproject["root"])
    up, down = target_state(str(p.root), p.targets["vm"]), target_state(str(p.root), p.targets["offline"])
    assert up["ok"] and f"SSH port {ssh_host.port} answers" in up["text"]
    assert not down["ok"] and "host not reachable" in down["text"]


@pytest.fixture(scope="module")
def copy_rc(rproject: dict, ssh_host: SshHost) -> Iterator[str]:  # noqa: F811
    """A target that copies the project to the host (the host here would see it at the same path)."""
    from labwork.project import attach_target
    root = rproject["root"]
    (root / ".gitignore").write_text("*.log\nscratch/\n")
    (root / "notes.log").write_text("ignored by git")
    (root / "scratch").mkdir(exist_ok=True)
    (root / "scratch" / "tmp.txt").write_text("ignored folder")
    (root / "outputs").mkdir(exist_ok=True)
    (root / "outputs" / "local-only.txt").write_text("not copied")
    (root / "stale.txt").write_text("deleted before the restart")
    attach_target(root, "remote", "vmcopy", _target(ssh_host, project_files="copy"))
    rproject["cp"].cli("experiment", "prepare", "--runconfig", "vmcopy", "--project", str(root), timeout=900)
    yield "vmcopy"
    from labwork.kernels.remote_copy import copy_path
    ssh_host.ssh(f"rm -rf \"$HOME\"/{copy_path(str(root)).rsplit('/', 1)[0]}")  # the host's copy


def test_copied_project_reads_files_skips_excluded_and_uploads(rproject: dict, copy_rc: str,
                                                                ssh_host: SshHost) -> None:  # noqa: F811
    root, cp = rproject["root"], rproject["cp"]
    k = ProvisionedKernel(f"labwork-{copy_rc}", rproject["env"] | {"JPY_SESSION_NAME": str(root / "copy.ipynb")})
    try:
        where = k.km.provisioner.workdir
        assert where and ".labwork-remote/projects/" in where and where != str(root)
        res = k.run("import os\nprint(os.getcwd())\nprint(open('data.csv').read())\n"
                    "print(sorted(p for p in ('notes.log', 'scratch', 'outputs/local-only.txt', 'stale.txt', "
                    "'labwork.toml') if os.path.exists(p)))")
        assert res.status == "ok", res.text
        assert where in res.stdout and "sepal,petal" in res.stdout
        assert "['labwork.toml', 'stale.txt']" in res.stdout  # excluded files are not in the copy
        assert k.run("%labwork history on").status == "ok"
        up = k.run("os.makedirs('outputs', exist_ok=True)\nopen('outputs/c.txt', 'w').write('from the copy')\n"
                   "%labwork upload outputs/c.txt")
        assert up.status == "ok" and "uploading outputs/c.txt" in up.stdout, up.text
        assert k.run("%labwork history off").status == "ok"
        assert not (root / "outputs" / "c.txt").exists()  # written in the host's copy, not here

        def found():
            for r in cp.runs(project=str(root)):
                d = cp.request("GET", f"/api/runs/{r['id']}")
                if d["runconfig"] == copy_rc and d["artifacts"]:
                    return d
            return None
        run = wait_for(found, timeout=60, what="the copied kernel's run")
        assert [a["path"] for a in run["artifacts"]] == ["outputs/c.txt"]
        body = cp.request("GET", f"/api/runs/{run['id']}/artifacts/outputs/c.txt")
        assert body == b"from the copy"
        # brought up to date at the next start: changed and deleted files follow, the copy's outputs stay
        (root / "data.csv").write_text("sepal,petal\n9.9,9.9\n")
        (root / "stale.txt").unlink()
        k.km.restart_kernel(now=False)
        k.kc.wait_for_ready(timeout=120)
        again = k.run("import os\nprint(open('data.csv').read(), os.path.exists('stale.txt'), "
                      "open('outputs/c.txt').read())")
        assert "9.9,9.9" in again.stdout and "False from the copy" in again.stdout, again.text
    finally:
        k.shutdown()
        (root / "data.csv").write_text("sepal,petal\n5.1,1.4\n")


def test_detect_uses_a_folder_the_host_shares_in_place(rproject: dict, ssh_host: SshHost) -> None:  # noqa: F811
    """project_files = detect on a host that sees the project at the same path (same labwork.toml):
    no copy, the kernel starts in the project folder itself."""
    from labwork.project import attach_target
    root = rproject["root"]
    attach_target(root, "remote", "vmdetect", _target(ssh_host, project_files="detect"))
    rproject["cp"].cli("experiment", "prepare", "--runconfig", "vmdetect", "--project", str(root), timeout=900)
    with started_kernel("labwork-vmdetect", rproject["env"]) as k:
        assert k.km.provisioner.workdir is None
        res = k.run("import os\nprint(os.getcwd(), os.environ.get('LABWORK_PROJECT_COPY'))\n"
                    "open('written-in-place.txt', 'w').write('here')")
        assert res.stdout.split() == [str(root), "None"], res.text
    assert (root / "written-in-place.txt").read_text() == "here"  # the very folder, not a copy
    (root / "written-in-place.txt").unlink()


@pytest.fixture(scope="module")
def hiding_host(rproject: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHost]:
    """An sshd on 127.0.0.2 whose sessions do not see the project's folder (an empty tmpfs over it
    in a mount namespace of its own): a host that does not share the path."""
    from tests.support.ssh_host import start_sshd, stop_sshd
    host = start_sshd(tmp_path_factory.mktemp("sshd-hiding"), hide=rproject["root"].parent)
    try:
        yield host
    finally:
        stop_sshd(host)


def test_detect_copies_to_a_host_that_does_not_share_the_folder(rproject: dict, copy_rc: str,
                                                               hiding_host: SshHost) -> None:
    """project_files = detect on a host without the folder: an rsync copy (outputs/ and what
    .gitignore excludes left out: copy_rc's files), brought up to date at the next start."""
    from labwork.project import attach_target
    root = rproject["root"]
    assert hiding_host.ssh(f"test -e {root}/labwork.toml").returncode != 0  # the host does not see it
    attach_target(root, "remote", "vmhidden", _target(hiding_host, project_files="detect"))
    rproject["cp"].cli("experiment", "prepare", "--runconfig", "vmhidden", "--project", str(root), timeout=900)
    (root / "stale.txt").write_text("deleted before the restart")
    with started_kernel("labwork-vmhidden", rproject["env"]) as k:
        where = k.km.provisioner.workdir
        assert where and ".labwork-remote/projects/" in where and where != str(root)
        res = k.run("import os\nprint(os.getcwd())\nprint(open('data.csv').read())\n"
                    "print(sorted(p for p in ('notes.log', 'scratch', 'outputs/local-only.txt', 'stale.txt', "
                    "'labwork.toml') if os.path.exists(p)))")
        assert where in res.stdout and "sepal,petal\n5.1,1.4" in res.stdout, res.text
        assert "['labwork.toml', 'stale.txt']" in res.stdout  # outputs/ and .gitignore'd files stay here
        (root / "data.csv").write_text("sepal,petal\n7.7,7.7\n")
        (root / "stale.txt").unlink()
        try:
            k.km.restart_kernel(now=False)
            k.kc.wait_for_ready(timeout=120)
            again = k.run("import os\nprint(open('data.csv').read(), os.path.exists('stale.txt'))")
            assert "7.7,7.7" in again.stdout and "False" in again.stdout, again.text
        finally:
            (root / "data.csv").write_text("sepal,petal\n5.1,1.4\n")


def test_spool_on_the_host_is_replayed_once(rproject: dict, ssh_host: SshHost) -> None:  # noqa: F811
    from tests.support import free_port
    root, cp = rproject["root"], rproject["cp"]
    down = {"LABWORK_URL": f"http://127.0.0.1:{free_port()}"}  # nothing listens: the kernel spools
    k = ProvisionedKernel("labwork-vm", rproject["env"] | down)
    home = k.km.provisioner._cfg("home")
    try:
        assert k.run("%labwork history on").status == "ok"
        code = ("from labwork import get_logger\nimport os\n"
                "for i in range(3):\n    get_logger().log('offline', i)\n"
                "os.makedirs('outputs', exist_ok=True)\nopen('outputs/off.txt', 'w').write('spooled')\n"
                "%labwork upload outputs/off.txt")
        assert k.run(code).status == "ok"
        assert k.run("%labwork history off").status == "ok"
        run_id = k.run("from labwork.history.recorder import recorder\nprint(recorder().run_id)").stdout.strip()
        status = k.run("recorder().sender.flush()\n%labwork status")
        assert "spooled now: 0" not in status.stdout, status.stdout  # really on the host, not delivered
        assert ssh_host.ssh(f"test -s {home}/spool/{run_id}.jsonl").returncode == 0
        saved = ssh_host.ssh(f"cd {home}/spool && tar -c {run_id}.jsonl blobs | base64 -w0").stdout
    finally:
        k.shutdown()
    # shutdown brought the spool back: nothing left on the host, the control plane replays it
    assert home.endswith("-vm")  # its own home on the host, not another run configuration's
    assert ssh_host.ssh(f"ls {home}/spool/*.jsonl").stdout.split() == []
    assert ssh_host.ssh(f"ls {home}/spool/blobs").stdout.split() == []
    run = wait_for(lambda: _run_with(cp, run_id), timeout=120, what="the replayed spool")
    series = cp.request("GET", f"/api/runs/{run_id}/values/offline")
    assert [p["value"] for p in series["points"]] == [0, 1, 2]  # each record once, in order
    assert [a["path"] for a in run["artifacts"]] == ["outputs/off.txt"]
    assert cp.request("GET", f"/api/runs/{run_id}/artifacts/outputs/off.txt") == b"spooled"
    spool = rproject["home"] / "spool"
    wait_for(lambda: not list(spool.glob("*.jsonl")), timeout=120, what="the local spool replayed")
    # the same spool again on the host (as if its removal there had failed): the next kernel start
    # brings it back, and it changes nothing: every record is stored once
    assert ssh_host.ssh(f"echo {saved} | base64 -d | tar -x -C {home}/spool").returncode == 0
    # a file labwork did not write (its name is no run id) is not taken from the host
    assert ssh_host.ssh(f"echo '{{}}' > '{home}/spool/not a run.jsonl'").returncode == 0
    k2 = ProvisionedKernel("labwork-vm", rproject["env"])
    k2.shutdown()
    assert ssh_host.ssh(f"test -e {home}/spool/{run_id}.jsonl").returncode != 0
    assert ssh_host.ssh(f"test -e '{home}/spool/not a run.jsonl'").returncode == 0
    assert not (spool / "not a run.jsonl").exists()
    ssh_host.ssh(f"rm -f '{home}/spool/not a run.jsonl'")
    wait_for(lambda: not list(spool.glob("*.jsonl")), timeout=120, what="the second copy replayed")
    series = cp.request("GET", f"/api/runs/{run_id}/values/offline")
    assert [p["value"] for p in series["points"]] == [0, 1, 2]
    assert [a["path"] for a in cp.request("GET", f"/api/runs/{run_id}")["artifacts"]] == ["outputs/off.txt"]


def _run_with(cp: ControlPlane, run_id: str) -> dict | None:
    """The run once its spool is replayed (the records, then the upload after them)."""
    import httpx
    try:
        d = cp.request("GET", f"/api/runs/{run_id}")
    except httpx.HTTPStatusError:  # not there yet
        return None
    return d if d["artifacts"] else None


def test_attach_remote_project_files_from_the_cli(rproject: dict) -> None:
    from labwork.project import load_project
    root, cp = rproject["root"], rproject["cp"]
    ok = cp.cli("computetarget", "attach", "remote", "--name", "clicopy", "--host", "127.0.0.2",
                "--project-files", "copy", "--project", str(root))
    assert "clicopy" in ok.stdout and load_project(root).targets["clicopy"].project_files == "copy"
    bad = cp.cli("computetarget", "attach", "remote", "--name", "clibad", "--host", "127.0.0.2",
                 "--project-files", "sometimes", "--project", str(root), check=False)
    text = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "project_files" in text and "Traceback" not in text
    assert "clibad" not in load_project(root).targets  # nothing written
