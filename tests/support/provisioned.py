"""Kernels started the way jupyter_server starts them: a jupyter_client KernelManager with
labwork's kernel spec manager, so the spec's kernel provisioner (Docker, SSH) is the real one."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.control_plane import ControlPlane
from tests.support.kernels import CellRunner
from tests.support.waiting import wait_for


class ProvisionedKernel(CellRunner):
    """A kernel started the way jupyter_server starts it: KernelManager + labwork's spec manager."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        from jupyter_client import KernelManager

        from labwork.kernels.specmanager import LabworkKernelSpecManager
        old = dict(os.environ)
        os.environ.update(env)
        try:
            self.km = KernelManager(kernel_name=name, kernel_spec_manager=LabworkKernelSpecManager())
            self.km.start_kernel(env={**os.environ, "JPY_SESSION_NAME": env.get("JPY_SESSION_NAME", "")})
        finally:
            os.environ.clear()
            os.environ.update(old)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def shutdown(self, now: bool = False) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=now)


@contextmanager
def prepared_project(tmp_path_factory: pytest.TempPathFactory, prefix: str, kind: str, rc: str,
                     target: dict, setup: Callable[[Path], None] | None = None,
                     config: str | None = None) -> Iterator[dict]:
    """A project "myIris" (with data.csv) whose run configuration `rc` runs on a `kind` target,
    `setup(root)` applied, a control plane of its own, and `rc` prepared: {root, home, cp, env,
    prepare (the command's output)}. The plane (`config`: its config.toml) stops at the end."""
    from labwork.project import attach_target, init_project
    home = tmp_path_factory.mktemp(f"{prefix}-home")
    root = tmp_path_factory.mktemp(prefix) / "irisproj"
    init_project(root, "myIris")
    (root / "data.csv").write_text("sepal,petal\n5.1,1.4\n")
    attach_target(root, kind, rc, target)
    if setup is not None:
        setup(root)
    cp = ControlPlane(home, config=config).start()
    env = {"LABWORK_HOME": str(home), "LABWORK_PROJECT_DIR": str(root), "LABWORK_URL": cp.url}
    try:
        prep = cp.cli("experiment", "prepare", "--runconfig", rc, "--project", str(root), timeout=900)
        yield {"root": root, "home": home, "cp": cp, "env": env, "prepare": prep.stdout}
    finally:
        cp.stop()


@contextmanager
def started_kernel(name: str, env: dict[str, str]) -> Iterator[ProvisionedKernel]:
    """A provisioned kernel for a `with` block (a module's shared kernel fixture), shut down after."""
    k = ProvisionedKernel(name, env)
    try:
        yield k
    finally:
        k.shutdown()


def member_token(cp: ControlPlane, root: Path, name: str = "bob") -> str:
    """A user `name`, made a member of the project at `root`, and a personal token of theirs (what
    the Jupyter server of `name` gives its kernels as LABWORK_TOKEN)."""
    cp.cli("user", "add", name, "--password-stdin", input_text=f"{name}-password-1\n")
    pid = cp.register(root)["id"]
    cp.request("POST", f"/api/projects/{pid}/members", json={"user": name})
    return cp.cli("token", "create", "--user", name, "--name", "kernel").stdout.strip()


def check_kernel_credential(k: CellRunner, cp: ControlPlane, root: Path, runconfig: str, token: str,
                            user: str, *, shared_host_user: bool = False) -> None:
    """A kernel started with `user`'s token holds that token in its own file, and nothing under its
    LABWORK_HOME holds the control plane's (an administrator's) token; a cell it runs with history
    on is `user`'s run. `shared_host_user`: the kernels of an SSH host run as one OS user there,
    so other kernels' run folders (readable to it, as documented) are not looked in."""
    probe = k.run(
        "import os, pathlib\n"
        "home = pathlib.Path(os.environ['LABWORK_HOME'])\n"
        "own = pathlib.Path(os.environ['LABWORK_TOKEN_FILE']).parent\n"
        f"admin = {cp.token!r}\n"
        f"skip = lambda p: {shared_host_user!r} and (home / 'run') in p.parents and own not in (p.parent, *p.parents)\n"
        "print('admin token in', [str(p) for p in home.rglob('*') if p.is_file() and not skip(p)"
        " and admin in p.read_text(errors='ignore')])\n"
        f"print('own token', open(os.environ['LABWORK_TOKEN_FILE']).read().strip() == {token!r})\n"
        "print('in env', [k for k, v in os.environ.items() if v in (admin,)])\n"
        "del admin")
    assert probe.status == "ok", probe.text
    assert "admin token in []" in probe.stdout and "own token True" in probe.stdout and "in env []" in probe.stdout, \
        probe.stdout
    marker = os.urandom(4).hex()
    assert k.run("%labwork history on").status == "ok"
    assert k.run(f"from labwork import get_logger\nget_logger().log('m{marker}', 1.0)").status == "ok"
    assert k.run("%labwork history off").status == "ok"

    def found() -> dict | None:
        for r in cp.runs(project=str(root)):
            d = cp.request("GET", f"/api/runs/{r['id']}")
            if d["runconfig"] == runconfig and any(v["name"] == f"m{marker}" for v in d["values"]):
                return d
        return None
    run = wait_for(found, timeout=60, what=f"{user}'s run from the {runconfig} kernel")
    assert run["user"] == user, run["user"]
