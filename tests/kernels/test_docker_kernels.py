"""Docker kernels, for real: the session's test dockerd, an image built by `labwork experiment
prepare`, kernels started by jupyter_client through labwork's Docker provisioner.

One daemon, one prepared image and one kernel are shared by the module where isolation allows
(the kernel survives interrupts); the fault tests make their own small kernels.
"""
from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from labwork.processes import pid_alive
from tests.support import ControlPlane, wait_for
from tests.support.docker_host import BASE_IMAGE, DockerHost, docker_host  # noqa: F401 - the fixture
from tests.support.jupyter import jupyter, kill_servers
from tests.support.provisioned import (ProvisionedKernel, check_kernel_credential, member_token, prepared_project,
                                      started_kernel)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dproject(docker_host: DockerHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # noqa: F811
    """A project with a docker target on the test daemon, prepared, and a control plane."""
    def requirements(root: Path) -> None:
        (root / "requirements.txt").write_text("# nothing beyond the kernel\n")
        rc = root / ".labwork" / "runconfig" / "docker.toml"
        rc.write_text(rc.read_text() + '\n[environment]\nrequirements = "requirements.txt"\n')
    with prepared_project(tmp_path_factory, "dk", "docker", "docker",
                          {"image": BASE_IMAGE, "docker_host": docker_host.url, "memory": "512m", "cpus": 1},
                          setup=requirements, config="target_state_s = 3600\n") as project:  # states: on demand
        yield project


@pytest.fixture(scope="module")
def dkernel(dproject: dict) -> Iterator[ProvisionedKernel]:
    with started_kernel("labwork-docker", dproject["env"] | {
            "JPY_SESSION_NAME": str(dproject["root"] / "analysis.ipynb"), "SERVER_SECRET_TOKEN": "must-not-leak",
            "LABWORK_TEST_SERVER_SECRET": "must-not-leak"}) as k:
        yield k


def test_prepare_builds_and_reuses_the_image(dproject: dict, docker_host: DockerHost) -> None:  # noqa: F811
    from labwork.kernels.docker_images import image_plan
    from labwork.project import load_project
    from labwork.settings import load_settings
    assert "ready: image labwork-kernel/docker:" in dproject["prepare"]
    os.environ["LABWORK_HOME"] = str(dproject["home"])
    plan = image_plan(load_project(dproject["root"]), "docker", load_settings())
    assert plan.prepared and docker_host.image_exists(plan.tag)
    again = dproject["cp"].cli("experiment", "prepare", "--runconfig", "docker", "--project", str(dproject["root"]))
    assert "up to date; reusing it" in again.stdout and "building" not in again.stdout
    # the requirements change: a new tag, built on the cached kernel layer
    req = dproject["root"] / "requirements.txt"
    old = req.read_text()
    req.write_text(old + f"# changed {uuid.uuid4().hex}\n")  # new to this daemon, whose images persist
    try:
        new_plan = image_plan(load_project(dproject["root"]), "docker", load_settings())
        assert new_plan.tag != plan.tag and not new_plan.prepared
        rebuilt = dproject["cp"].cli("experiment", "prepare", "--runconfig", "docker", "--project",
                                     str(dproject["root"]), timeout=900)
        assert "building" in rebuilt.stdout and new_plan.tag in rebuilt.stdout
        assert docker_host.image_exists(new_plan.tag)
    finally:
        req.write_text(old)


def test_kernel_runs_in_a_container_with_the_project(dkernel: ProvisionedKernel, dproject: dict,
                                                    docker_host: DockerHost) -> None:  # noqa: F811
    assert dkernel.run("1+1").text.strip() == "2"
    res = dkernel.run("import os, sys\nprint(open('data.csv').read())\nprint(os.getcwd())\n"
                      "print(sys.executable)\nprint(os.path.exists('/.dockerenv'))")
    assert "sepal,petal" in res.stdout
    assert str(dproject["root"]) in res.stdout and "/opt/labwork/venv/bin/python" in res.stdout
    assert "True" in res.stdout
    [cid] = docker_host.containers(f"labwork.kernel={dkernel.km.kernel_id}")  # the daemon is shared: this kernel's
    limits = docker_host.docker("inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}", cid)
    assert limits.stdout.decode().split() == [str(512 * 1024 * 1024), str(10**9)]


def test_server_environment_does_not_leak(dkernel: ProvisionedKernel) -> None:
    """The server's environment (the kernel manager was given all of it) stays out of the container."""
    res = dkernel.run("import os\nprint(sorted(os.environ))\nprint(os.environ.get('SERVER_SECRET_TOKEN'))")
    assert "must-not-leak" not in res.stdout and "None" in res.stdout
    assert "'LABWORK_RUNCONFIG'" in res.stdout and "'SERVER_SECRET_TOKEN'" not in res.stdout
    for host_only in ("'VIRTUAL_ENV'", "'PYTEST_CURRENT_TEST'", "'LABWORK_TEST_SERVER_SECRET'"):
        assert host_only not in res.stdout


def test_run_history_and_upload_reach_the_control_plane(dkernel: ProvisionedKernel, dproject: dict) -> None:
    cp = dproject["cp"]
    assert dkernel.run("%labwork history on").status == "ok"
    assert dkernel.run("from labwork import get_logger\nget_logger().log('acc', 0.75)").status == "ok"
    up = dkernel.run("import os\nos.makedirs('outputs', exist_ok=True)\n"
                     "open('outputs/model.txt', 'w').write('m')\n%labwork upload outputs/model.txt")
    assert up.status == "ok", up.text
    assert dkernel.run("%labwork history off").status == "ok"

    def run_with_entries():
        runs = cp.runs(project=str(dproject["root"]))
        for r in runs:
            detail = cp.request("GET", f"/api/runs/{r['id']}")
            if len(detail["entries"]) >= 2 and detail["artifacts"]:
                return detail
        return None
    run = wait_for(run_with_entries, timeout=60, what="the docker kernel's run in the control plane")
    assert run["runconfig"] == "docker" and run["notebook"] == "analysis.ipynb"
    assert {v["name"] for v in run["values"]} == {"acc"}
    assert run["artifacts"][0]["path"] == "outputs/model.txt"


def test_a_members_container_holds_only_their_token_and_its_runs_are_theirs(dproject: dict) -> None:
    """A kernel of bob's server (LABWORK_TOKEN: bob's personal token) gets that token in a file of its
    own, mounted read-only; the control plane's (an administrator's) token is nowhere in the
    container's home; what it records is bob's run. Its token file goes with the kernel."""
    token = member_token(dproject["cp"], dproject["root"], "bob")
    with started_kernel("labwork-docker", dproject["env"] | {
            "LABWORK_TOKEN": token, "JPY_SESSION_NAME": str(dproject["root"] / "bob.ipynb")}) as k:
        check_kernel_credential(k, dproject["cp"], dproject["root"], "docker", token, "bob")
        kept = dproject["home"] / "kernel-tokens" / k.km.provisioner.kernel_id
        assert (kept / "token").read_text() == token and oct((kept / "token").stat().st_mode & 0o777) == "0o600"
    assert not kept.exists()


def test_interrupt_in_sleep(dkernel: ProvisionedKernel) -> None:
    res = dkernel.run_and_interrupt("import time\nprint('sleeping', flush=True)\ntime.sleep(60)", "sleeping")
    # an uninterrupted sleep would end "ok", not in KeyboardInterrupt
    assert res.status == "error" and (res.error or {}).get("ename") == "KeyboardInterrupt", res.text
    assert dkernel.run("1+2").text.strip() == "3"


def test_shutdown_leaves_no_container(dproject: dict, docker_host: DockerHost) -> None:  # noqa: F811
    k = ProvisionedKernel("labwork-docker", dproject["env"])
    assert k.run("40+2").text.strip() == "42"
    [cid] = docker_host.containers(f"labwork.kernel={k.km.kernel_id}")  # the daemon is shared: this kernel's
    k.shutdown()
    assert cid not in set(docker_host.containers())
    assert docker_host.docker("ps", "-aq", "--filter", f"id={cid}").stdout.strip() == b""


def test_a_killed_jupyter_server_leaves_no_container(dproject: dict, docker_host: DockerHost) -> None:  # noqa: F811
    """kill -9 of a project's Jupyter server: the plane's loop marks it dead and removes its docker kernel."""
    cp, root = dproject["cp"], str(dproject["root"])
    project = cp.register(dproject["root"])
    with cp.client() as api:
        server = api.post(f"/api/projects/{project['id']}/server", json={"hours": 1}, timeout=120).json()
        assert server["state"] == "running", server

        def ours() -> list[str]:  # every state: a container that merely exited would still be left
            return docker_host.docker("ps", "-aq", "--filter", f"label=labwork.server={server['id']}",
                                      "--filter", f"label=labwork.project={root}").stdout.decode().split()
        try:
            with jupyter(server) as j:
                kernel = j.post("/api/kernels", json={"name": "labwork-docker"}, timeout=120)
                assert kernel.status_code == 201, kernel.text
            [cid] = wait_for(ours, timeout=60, what="the docker kernel's container, labelled with its server")
            os.kill(server["pid"], signal.SIGKILL)  # the server only: the container is no child of it
            status = wait_for(lambda: (s := api.get(f"/api/projects/{project['id']}/server").json())["state"]
                              == "stopped" and s, timeout=90, what="the loop to mark the server dead")
            assert "exited unexpectedly" in status["stop_reason"]
            assert ours() == []
            assert docker_host.docker("ps", "-aq", "--filter", f"id={cid}").stdout.strip() == b""
            log = Path(status["log_path"]).read_text()
            assert f"removed the kernel's container {cid[:10]}" in log and "the dead server left" in log
        finally:
            for left in ours():
                docker_host.docker("rm", "-f", left, check=False)
            kill_servers(cp.home)  # a failure before the kill leaves no server running either


def test_a_jupyter_server_that_died_while_the_plane_was_down_leaves_no_container(
        dproject: dict, docker_host: DockerHost, tmp_path: Path) -> None:  # noqa: F811
    """The plane killed, then its server with a docker kernel: adopt() at the restart removes the container."""
    root = str(dproject["root"])
    server: dict = {}

    def ours() -> list[str]:
        return docker_host.docker("ps", "-aq", "--filter", f"label=labwork.server={server['id']}",
                                  "--filter", f"label=labwork.project={root}").stdout.decode().split()
    cp = ControlPlane(tmp_path / "home").start()  # its own plane: this test kills and restarts it
    try:
        cp.cli("experiment", "prepare", "--runconfig", "docker", "--project", root, timeout=900)  # the image is there
        project = cp.register(dproject["root"])
        with cp.client() as api:
            server.update(api.post(f"/api/projects/{project['id']}/server", json={"hours": 1}, timeout=120).json())
        assert server["state"] == "running", server
        with jupyter(server) as j:
            kernel = j.post("/api/kernels", json={"name": "labwork-docker"}, timeout=120)
            assert kernel.status_code == 201, kernel.text
        [cid] = wait_for(ours, timeout=60, what="the docker kernel's container, labelled with its server")
        cp.stop(signal.SIGKILL)
        os.kill(server["pid"], signal.SIGKILL)
        wait_for(lambda: not pid_alive(server["pid"]), timeout=30, what="the server to exit")
        assert ours() == [cid]  # nobody removed it while the plane was down
        cp.start()
        status = cp.request("GET", f"/api/projects/{project['id']}/server")
        assert status["state"] == "stopped" and "while the control plane was not running" in status["stop_reason"]
        assert ours() == []
        assert f"removed the kernel's container {cid[:10]}" in Path(status["log_path"]).read_text()
    finally:
        for left in ours() if server else []:
            docker_host.docker("rm", "-f", left, check=False)
        cp.stop()
        kill_servers(cp.home)


def test_out_of_memory_is_reported(dproject: dict, docker_host: DockerHost, tmp_path: Path,  # noqa: F811
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from labwork.kernels.ends import last_end
    from labwork.project import attach_target
    ends = tmp_path / "server.kernel-ends.jsonl"
    monkeypatch.setenv("LABWORK_KERNEL_ENDS", str(ends))  # as the server manager sets it
    root = dproject["root"]
    attach_target(root, "docker", "small", {"image": BASE_IMAGE, "docker_host": docker_host.url, "memory": "96m"})
    dproject["cp"].cli("experiment", "prepare", "--runconfig", "small", "--project", str(root), timeout=900)
    k = ProvisionedKernel("labwork-small", dproject["env"])
    try:
        k.kc.execute("x = bytearray(400 * 1024 * 1024)\nx[::4096] = b'1' * len(x[::4096])")
        wait_for(lambda: not k.km.is_alive(), timeout=120, what="the kernel to die of OOM")
        reason = k.km.provisioner.end_reason
        assert reason and "out of memory (limit 96 MiB)" in reason and "container " in reason
        end = last_end(k.km.kernel_id, ends)
        assert end is not None and end.oom and end.where.startswith("container ")
        assert end.describe() == "out of memory (limit 96 MiB)" and end.run_config == "small"
    finally:
        k.shutdown(now=True)
    assert not docker_host.containers(label="labwork.runconfig=small")


def test_image_missing_says_how_to_prepare(dproject: dict, docker_host: DockerHost) -> None:  # noqa: F811
    """A marker says prepared but the daemon lost the image: the start fails with the command."""
    from labwork.errors import NotFound
    from labwork.kernels.docker_images import image_plan
    from labwork.project import attach_target, load_project
    from labwork.settings import load_settings
    root = dproject["root"]
    attach_target(root, "docker", "lost", {"image": BASE_IMAGE, "docker_host": docker_host.url})
    os.environ["LABWORK_HOME"] = str(dproject["home"])
    plan = image_plan(load_project(root), "lost", load_settings())
    plan.marker.parent.mkdir(parents=True, exist_ok=True)
    plan.marker.write_text("{}")  # as if prepared elsewhere
    with pytest.raises(NotFound) as err:
        ProvisionedKernel("labwork-lost", dproject["env"])
    assert plan.tag in err.value.message and "labwork experiment prepare --runconfig lost" in (err.value.hint or "")


def test_unprepared_image_kernel_answers_with_the_command(dproject: dict, docker_host: DockerHost) -> None:  # noqa: F811
    from labwork.project import attach_target
    attach_target(dproject["root"], "docker", "fresh", {"image": BASE_IMAGE, "docker_host": docker_host.url})
    k = ProvisionedKernel("labwork-fresh", dproject["env"])
    try:
        res = k.run("1+1")
        assert res.status == "error" and "labwork experiment prepare --runconfig fresh" in res.text
    finally:
        k.shutdown()


def test_daemon_down_is_a_clear_error(dproject: dict, tmp_path: Path) -> None:
    from labwork.errors import Unavailable
    from labwork.kernels.prepare import prepare_runconfig
    from labwork.project import attach_target, load_project
    from labwork.settings import load_settings
    sock = tmp_path / "nothing.sock"
    attach_target(dproject["root"], "docker", "down", {"image": BASE_IMAGE, "docker_host": f"unix://{sock}"})
    os.environ["LABWORK_HOME"] = str(dproject["home"])
    with pytest.raises(Unavailable) as err:
        prepare_runconfig(load_project(dproject["root"]), "down", load_settings())
    assert f"unix://{sock}" in err.value.message and "not reachable" in err.value.message
    out = dproject["cp"].cli("experiment", "prepare", "--runconfig", "down", "--project", str(dproject["root"]),
                             check=False)
    assert out.returncode == 6 and "not reachable" in out.stdout + out.stderr and "Traceback" not in out.stderr


def test_container_killed_mid_cell_reports_dead(dproject: dict, docker_host: DockerHost) -> None:  # noqa: F811
    k = ProvisionedKernel("labwork-docker", dproject["env"])
    try:
        [cid] = docker_host.containers(f"labwork.kernel={k.km.kernel_id}")  # the daemon is shared: this kernel's
        k.kc.execute("import time\ntime.sleep(60)")
        docker_host.docker("kill", cid)
        wait_for(lambda: not k.km.is_alive(), timeout=60, what="the kernel to be seen dead")
        assert "killed by signal 9 (SIGKILL)" in (k.km.provisioner.end_reason or "")
    finally:
        k.shutdown(now=True)
    assert cid not in docker_host.containers()


def test_compute_page_shows_daemon_state_and_where_kernels_run(dkernel: ProvisionedKernel, dproject: dict,
                                                              docker_host: DockerHost, tmp_path: Path) -> None:  # noqa: F811
    from labwork.kernels.target_state import target_state
    from labwork.project import attach_target, load_project
    attach_target(dproject["root"], "docker", "gone", {"image": BASE_IMAGE,
                                                      "docker_host": f"unix://{tmp_path / 'no.sock'}"})
    project = load_project(dproject["root"])
    up = target_state(str(project.root), project.targets["docker"])
    [cid] = docker_host.containers(label=f"labwork.kernel={dkernel.km.kernel_id}")
    assert up["ok"] and "daemon reachable" in up["text"]
    assert any(cid.startswith(k["container"]) and k["runconfig"] == "docker" for k in up["kernels"])
    down = target_state(str(project.root), project.targets["gone"])
    assert not down["ok"] and "daemon not reachable" in down["text"]
    cp = dproject["cp"]
    pid = cp.register(dproject["root"])["id"]
    with cp.client() as c:
        def answered() -> dict | None:  # probed in the background: the page's script polls this too
            states = c.get(f"/projects/{pid}/compute/states.json").json()
            return states if not any(st["checking"] for st in states.values()) else None
        first = wait_for(answered, timeout=60, what="the targets' states")
        assert first["docker"]["ok"] and not first["gone"]["ok"]
        page = c.get(f"/projects/{pid}/compute")
        assert page.status_code == 200
        assert "daemon reachable" in page.text and "daemon not reachable" in page.text and cid[:12] in page.text
        # cached: the next renders do not ask the daemons again ...
        c.get(f"/projects/{pid}/compute")
        again = c.get(f"/projects/{pid}/compute/states.json").json()
        assert {n: st["checked_at"] for n, st in again.items()} == {n: st["checked_at"] for n, st in first.items()}
        assert not any(st["checking"] for st in again.values())
        # ... until "Check again" asks at once
        assert c.get(f"/projects/{pid}/compute?refresh=1").status_code == 200
        fresh = wait_for(answered, timeout=60, what="the states checked again")
        assert all(fresh[n]["checked_at"] > first[n]["checked_at"] for n in ("docker", "gone"))


@pytest.fixture(scope="module")
def sparkbox(dproject: dict, docker_host: DockerHost) -> str:  # noqa: F811
    """A pyspark run configuration on the docker target, prepared (Java and pyspark in its image)."""
    from labwork.project import attach_target
    root = dproject["root"]
    attach_target(root, "docker", "sparkbox", {"image": BASE_IMAGE, "docker_host": docker_host.url, "memory": "2g"},
                  framework="pyspark")
    dproject["cp"].cli("experiment", "prepare", "--runconfig", "sparkbox", "--project", str(root), timeout=1800)
    return "sparkbox"


def test_pyspark_in_docker(dproject: dict, docker_host: DockerHost, sparkbox: str) -> None:  # noqa: F811
    """framework = pyspark on a docker target: prepare adds Java and pyspark to the image, the
    kernel has `spark` before the first cell and reports its Spark UI to the control plane."""
    k = ProvisionedKernel(f"labwork-{sparkbox}", dproject["env"])
    try:
        res = k.run("spark.range(10).count()", timeout=300)
        assert res.status == "ok" and res.text.strip() == "10", res.text
        ui = k.run("print(sc.uiWebUrl)").stdout
        assert ui.startswith("http://")
    finally:
        k.shutdown()
    assert not docker_host.containers(label="labwork.runconfig=sparkbox")


def test_spark_ui_of_a_docker_pyspark_kernel_is_linked_and_reachable(dproject: dict, docker_host: DockerHost,  # noqa: F811
                                                                    sparkbox: str) -> None:
    """The dashboard's running kernels (the project's Jupyter page) link a Docker PySpark kernel to
    its Spark UI, and the link answers (the container shares the host's loopback)."""
    import httpx

    from tests.support.jupyter import jupyter
    cp, root = dproject["cp"], dproject["root"]
    pid = cp.register(root)["id"]
    server = cp.request("POST", f"/api/projects/{pid}/server", json={"kind": "python", "ui": "lab"})
    try:
        with jupyter(server) as j:
            r = j.post("/api/kernels", json={"name": f"labwork-{sparkbox}"}, timeout=300)
            assert r.status_code == 201, r.text
            kid = r.json()["id"]

        def linked() -> str | None:
            for k in cp.request("GET", f"/api/projects/{pid}/server")["kernels"]:
                if k["id"] == kid and k.get("spark_ui_url"):
                    return k["spark_ui_url"]
            return None
        url = wait_for(linked, timeout=300, what="the kernel's Spark UI reported to the control plane")
        assert url.startswith("http://127.0.0.1:"), url  # on loopback, like a local kernel's
        ui = httpx.get(url, follow_redirects=True, timeout=30)
        assert ui.status_code == 200 and "Spark" in ui.text
        with cp.client() as c:
            page = c.get(f"/projects/{pid}/jupyter")
        assert page.status_code == 200 and f'href="{url}"' in page.text and "Spark UI" in page.text
        assert docker_host.containers(f"labwork.kernel={kid}")
    finally:
        cp.request("DELETE", f"/api/projects/{pid}/server")
    wait_for(lambda: not docker_host.containers(f"labwork.kernel={kid}"), timeout=60,
             what="the kernel's container removed with its server")


def test_history_spooled_while_the_plane_is_away_is_replayed_once(docker_host: DockerHost, tmp_path: Path) -> None:  # noqa: F811
    """The plane is down while a container kernel runs cells with history on; the container is then
    killed. Its spool (the plane's own spool folder, mounted) is replayed when the plane starts."""
    from labwork.kernels.prepare import prepare_runconfig
    from labwork.project import attach_target, init_project, load_project
    from labwork.settings import load_settings
    from tests.support.kernels import spool_records
    home = tmp_path / "home"
    home.mkdir()
    root = init_project(tmp_path / "proj", "myIris").root
    attach_target(root, "docker", "docker", {"image": BASE_IMAGE, "docker_host": docker_host.url})
    cp = ControlPlane(home).start()
    try:
        old = os.environ.get("LABWORK_HOME")
        os.environ["LABWORK_HOME"] = str(home)
        try:
            prepare_runconfig(load_project(root), "docker", load_settings())
        finally:
            os.environ["LABWORK_HOME"] = old or ""
        env = {"LABWORK_HOME": str(home), "LABWORK_PROJECT_DIR": str(root), "LABWORK_URL": cp.url}
        k = ProvisionedKernel("labwork-docker", env)
        cp.stop()
        try:
            [cid] = docker_host.containers(label=f"labwork.kernel={k.km.kernel_id}")
            assert k.run("%labwork history on").status == "ok"
            assert k.run("y = 7\ny").text.strip() == "7"
            wait_for(lambda: sum(r.get("type") == "entry" for r in spool_records(home)) >= 1,
                     timeout=60, what="the entry spooled in the plane's spool folder")
            docker_host.docker("kill", cid)
            wait_for(lambda: not k.km.is_alive(), timeout=60, what="the killed container")
        finally:
            k.shutdown(now=True)
        cp.start()

        def replayed():
            runs = cp.runs(project=str(root))
            return runs and cp.request("GET", f"/api/runs/{runs[0]['id']}")
        run = wait_for(lambda: (r := replayed()) and r["entries"] and r, timeout=120, what="the spool replayed")
        assert [e["code"] for e in run["entries"]] == ["y = 7\ny"]  # once, not twice
        wait_for(lambda: not spool_records(home), timeout=60, what="the spool emptied")
    finally:
        cp.stop()


def test_restart_gives_a_fresh_container(dproject: dict, docker_host: DockerHost) -> None:  # noqa: F811
    k = ProvisionedKernel("labwork-docker", dproject["env"])
    try:
        assert k.run("z = 5").status == "ok"
        [first] = docker_host.containers(label=f"labwork.kernel={k.km.kernel_id}")
        k.km.restart_kernel(now=False)
        k.kc.wait_for_ready(timeout=120)
        res = k.run("'z' in dir()")
        assert res.text.strip() == "False"
        [second] = docker_host.containers(label=f"labwork.kernel={k.km.kernel_id}")
        assert second != first and first not in docker_host.containers()
    finally:
        k.shutdown()
