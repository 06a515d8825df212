"""Jobs on Docker and remote (SSH) run configurations, for real: the session's test dockerd and
sshd, environments made by `labwork experiment prepare`, papermill's kernels started through
labwork's provisioners in the job runner. One prepared project per kind, on the folder's control
plane; the unprepared run configurations are attached but never prepared (nothing to build)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.conftest import code_cell, write_notebook
from tests.support import ControlPlane, wait_for
from tests.support.docker_host import BASE_IMAGE, DockerHost, docker_host  # noqa: F401 - the fixture
from tests.support.ssh_host import SshHost, ssh_host  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

FINAL = ("completed", "failed", "cancelled", "skipped", "missed")


def _run(cp: ControlPlane, project: dict, job: str, **body: Any) -> dict[str, Any]:
    return cp.request("POST", f"/api/projects/{project['id']}/jobs/{job}/runs", json=body)


def _get(cp: ControlPlane, project: dict, run_id: int) -> dict[str, Any]:
    return cp.request("GET", f"/api/projects/{project['id']}/jobs/runs/{run_id}")


def _wait(cp: ControlPlane, project: dict, run_id: int, timeout: float = 240) -> dict[str, Any]:
    return wait_for(lambda: (lambda r: r if r["status"] in FINAL else None)(_get(cp, project, run_id)),
                    timeout=timeout, interval=0.3, what=f"job run {run_id} to end")


def _texts(cp: ControlPlane, project: dict, run_id: int) -> str:
    with cp.client() as c:
        r = c.get(f"/api/projects/{project['id']}/jobs/runs/{run_id}/output")
    assert r.status_code == 200, r.text
    return "".join(o["text"] if isinstance(o.get("text"), str) else "".join(o.get("text", []))
                   for c in r.json()["cells"] for o in c.get("outputs", []))


def _history_values(cp: ControlPlane, project: dict, run_id: int) -> dict[str, Any]:
    linked = wait_for(lambda: (lambda r: r if r["history_run"] else None)(_get(cp, project, run_id)),
                      timeout=60, what="the job run's run-history link")
    return wait_for(lambda: (lambda h: h if h.get("values") else None)(
        cp.request("GET", f"/api/runs/{linked['history_run']}")), timeout=60, what="the logged value")


def _params_notebook(root: Path) -> None:
    write_notebook(root / "where.ipynb", code_cell("n = 1", ["parameters"]),
                   code_cell("import os, sys\nfrom labwork import get_logger\nget_logger().log('twice', 2 * n)\n"
                             "print('on', os.environ['LABWORK_RUNCONFIG'], sys.executable)\n"
                             "print('data:', open('data.csv').read().strip())"))
    (root / "data.csv").write_text("sepal,petal\n")


@pytest.fixture(scope="module")
def dproject(cp: ControlPlane, docker_host: DockerHost, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: F811
    """A project with a prepared docker run configuration `docker` and an unprepared one `raw`."""
    from labwork.project import attach_target
    project = _docker_project(cp, docker_host, tmp_path_factory.mktemp("rj-docker") / "boxproj", "boxProj")
    root = Path(project["path"])
    attach_target(root, "docker", "raw", {"image": BASE_IMAGE, "docker_host": docker_host.url})
    _params_notebook(root)
    return project


def _docker_project(cp: ControlPlane, docker_host: DockerHost, root: Path, name: str) -> dict:  # noqa: F811
    """A project on `cp` with the run configuration `docker` on the test daemon, prepared."""
    from labwork.project import attach_target
    project = cp.make_project(root, name)
    # the same requirements as tests/kernels/test_docker_kernels.py: the session's image layers serve both
    (root / "requirements.txt").write_text("# nothing beyond the kernel\n")
    attach_target(root, "docker", "docker", {"image": BASE_IMAGE, "docker_host": docker_host.url,
                                             "memory": "512m", "cpus": 1})
    rc = root / ".labwork" / "runconfig" / "docker.toml"
    rc.write_text(rc.read_text() + '\n[environment]\nrequirements = "requirements.txt"\n')
    cp.cli("experiment", "prepare", "--runconfig", "docker", "--project", str(root), timeout=900)
    return project


@pytest.fixture(scope="module")
def rproject(cp: ControlPlane, ssh_host: SshHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # noqa: F811
    """A project with a prepared remote run configuration `vm` and an unprepared one `far`."""
    from labwork.project import attach_target
    root = tmp_path_factory.mktemp("rj-remote") / "vmproj"
    project = cp.make_project(root, "vmProj")
    target = {"host": ssh_host.host, "port": ssh_host.port, "user": ssh_host.user,
              "key_file": str(ssh_host.key_file), "known_hosts": str(ssh_host.known_hosts)}
    attach_target(root, "remote", "vm", target)
    attach_target(root, "remote", "far", target | {"python": "/usr/bin/python3"})  # another environment
    cp.cli("experiment", "prepare", "--runconfig", "vm", "--project", str(root), timeout=900)
    _params_notebook(root)
    yield project


def _sleeping_run(cp: ControlPlane, project: dict, name: str, runconfig: str) -> tuple[dict, str, Any]:
    """A run of a notebook that sleeps in its second cell, once that cell runs: (run, kernel id, runner)."""
    import psutil
    root = Path(project["path"])
    marker = root / f"{name}-started"
    write_notebook(root / f"{name}.ipynb", code_cell(f"print('started', flush=True)\nopen({str(marker)!r}, 'w').write('1')"),
                   code_cell("import time\ntime.sleep(600)"))
    cp.request("POST", f"/api/projects/{project['id']}/jobs",
               json={"name": name, "notebook": f"{name}.ipynb", "runconfig": runconfig})
    run = _run(cp, project, name)
    kid = wait_for(lambda: _get(cp, project, run["id"]).get("kernel_id"), timeout=60, what="the run's kernel id")
    wait_for(marker.exists, timeout=180, what="the first cell to run")
    run_dir = f"/jobs/{project['id']}/{run['job_id']}/{run['id']}"
    [runner] = [p for p in psutil.process_iter(["cmdline"])
                if "labwork.jobs.runner" in (p.info["cmdline"] or []) and run_dir in " ".join(p.info["cmdline"])]
    return run, kid, runner


def test_a_docker_job_runs_in_its_container_with_parameters_output_and_history(
        cp: ControlPlane, dproject: dict) -> None:
    job = cp.request("POST", f"/api/projects/{dproject['id']}/jobs",
                     json={"name": "boxed", "notebook": "where.ipynb", "runconfig": "docker",
                           "parameters": {"n": 4}})
    assert job["kernel"] == "boxProj docker"
    ended = _wait(cp, dproject, _run(cp, dproject, "boxed")["id"])
    assert ended["status"] == "completed", ended
    out = _texts(cp, dproject, ended["id"])
    assert "on docker /opt/labwork/venv/bin/python" in out and "data: sepal,petal" in out
    assert "8" in json.dumps(_history_values(cp, dproject, ended["id"])["values"])


def test_a_job_on_unprepared_run_configurations_fails_with_the_prepare_command(
        cp: ControlPlane, dproject: dict, rproject: dict) -> None:
    for project, rc in ((dproject, "raw"), (rproject, "far")):
        cp.request("POST", f"/api/projects/{project['id']}/jobs",
                   json={"name": f"on-{rc}", "notebook": "where.ipynb", "runconfig": rc})
        ended = _wait(cp, project, _run(cp, project, f"on-{rc}")["id"], timeout=120)
        assert ended["status"] == "failed", ended
        assert f"labwork experiment prepare --runconfig {rc}" in ended["reason"] and "not prepared" in ended["reason"]


def test_a_container_killed_mid_run_fails_the_run_with_the_containers_reason(
        cp: ControlPlane, dproject: dict, docker_host: DockerHost) -> None:  # noqa: F811
    run, kid, _runner = _sleeping_run(cp, dproject, "long", "docker")
    [cid] = docker_host.containers(f"labwork.kernel={kid}")
    docker_host.docker("kill", cid)
    ended = _wait(cp, dproject, run["id"], timeout=120)
    assert ended["status"] == "failed" and "container" in ended["reason"] and "SIGKILL" in ended["reason"], ended
    assert ended["output_kept"] and "started" in _texts(cp, dproject, run["id"])
    assert not docker_host.containers(f"labwork.kernel={kid}")  # the runner removed it


def test_cancelling_a_docker_run_ends_its_container(cp: ControlPlane, dproject: dict,
                                                    docker_host: DockerHost) -> None:  # noqa: F811
    run, kid, _runner = _sleeping_run(cp, dproject, "sleepy", "docker")
    assert docker_host.containers(f"labwork.kernel={kid}")
    cp.cli("job", "cancel", str(run["id"]), "--project", dproject["path"])
    ended = _wait(cp, dproject, run["id"], timeout=120)
    assert ended["status"] == "cancelled" and ended["reason"] == "cancelled by the user", ended
    log = cp.cli("job", "logs", str(run["id"]), "--project", dproject["path"]).stdout
    assert "SIGTERM, ending the kernel" in log
    assert not docker_host.containers(f"labwork.kernel={kid}")


def test_a_remote_job_runs_on_the_host_with_output_and_history(cp: ControlPlane, rproject: dict) -> None:
    job = cp.request("POST", f"/api/projects/{rproject['id']}/jobs",
                     json={"name": "far-away", "notebook": "where.ipynb", "runconfig": "vm",
                           "parameters": {"n": 21}})
    assert job["kernel"] == "vmProj vm"
    ended = _wait(cp, rproject, _run(cp, rproject, "far-away")["id"])
    assert ended["status"] == "completed", ended
    out = _texts(cp, rproject, ended["id"])
    assert "on vm " in out and ".labwork-remote/envs/" in out and "data: sepal,petal" in out
    assert "42" in json.dumps(_history_values(cp, rproject, ended["id"])["values"])


def test_a_runner_killed_mid_run_leaves_no_container(cp: ControlPlane, dproject: dict,
                                                     docker_host: DockerHost) -> None:  # noqa: F811
    import os
    import signal
    run, kid, runner = _sleeping_run(cp, dproject, "orphan", "docker")
    assert docker_host.containers(f"labwork.kernel={kid}")
    os.kill(runner.pid, signal.SIGKILL)  # no cleanup of its own: the control plane removes the container
    ended = _wait(cp, dproject, run["id"], timeout=120)
    assert ended["status"] == "failed" and "without a result" in ended["reason"], ended
    assert not docker_host.containers(f"labwork.kernel={kid}")
    assert "removed the kernel's container" in cp.cli("job", "logs", str(run["id"]), "--project",
                                                      dproject["path"]).stdout


def test_a_runner_that_died_while_the_plane_was_down_leaves_no_container(
        own_cp: ControlPlane, docker_host: DockerHost, tmp_path: Path) -> None:  # noqa: F811
    import os
    import signal
    project = _docker_project(own_cp, docker_host, tmp_path / "downproj", "downProj")
    run, kid, runner = _sleeping_run(own_cp, project, "unwatched", "docker")
    own_cp.stop()  # runners outlive the control plane
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=60)
    assert docker_host.containers(f"labwork.kernel={kid}")  # nobody watching: the kernel's container runs on
    own_cp.start()  # adopt(): the runner is gone, its container is found by its label and removed
    ended = _get(own_cp, project, run["id"])
    assert ended["status"] == "failed" and "gone when the control plane came back" in ended["reason"], ended
    assert not docker_host.containers(f"labwork.kernel={kid}")
    log = own_cp.cli("job", "logs", str(run["id"]), "--project", project["path"]).stdout
    assert "the run ended while the control plane was not running" in log
    assert "removed the kernel's container" in log


def test_a_remote_runner_killed_mid_run_leaves_no_remote_kernel(cp: ControlPlane, rproject: dict,
                                                                ssh_host: SshHost) -> None:  # noqa: F811
    """The runner (holding the kernel's SSH session) killed with SIGKILL: the host's side sees the
    session end and ends the kernel; the remote process table is clean within a bounded wait."""
    import os
    import signal
    run, kid, runner = _sleeping_run(cp, rproject, "remote-orphan", "vm")

    def remote_kernel() -> list[str]:  # `[j]ob-…` matches the kernel, not this search's own command line
        return ssh_host.ssh(f"pgrep -f '[{kid[0]}]{kid[1:]}' || true").stdout.split()
    assert remote_kernel()
    os.kill(runner.pid, signal.SIGKILL)
    ended = _wait(cp, rproject, run["id"], timeout=120)
    assert ended["status"] == "failed" and "without a result" in ended["reason"], ended
    wait_for(lambda: not remote_kernel(), timeout=30, what="the remote kernel to end with its session")
