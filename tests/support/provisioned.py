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
