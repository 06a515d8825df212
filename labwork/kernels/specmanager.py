"""The `KernelSpecManager` set on every Jupyter server labwork starts (the nb_conda_kernels way).

It re-reads the project's run configurations on every call, so attaching or detaching a compute
target changes the kernel list without restarting the server. Stock kernels (python3) stay.
"""
from __future__ import annotations

import json
import os
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

from labwork import envvars


def _specs():  # noqa: ANN202 - the labwork.kernels.specs module
    """labwork.kernels.specs, imported when Jupyter first asks for kernels: it pulls in the project
    models and environments, which a starting server does not need (its start-up stays as fast as
    a plain `jupyter lab`)."""
    from labwork.kernels import specs
    return specs


class LabworkKernelSpecManager(KernelSpecManager):
    def _labwork_specs(self) -> dict[str, dict[str, Any]]:
        from labwork.project.files import load_project
        from labwork.settings import load_settings

        root = envvars.get(envvars.PROJECT_DIR) or getattr(self.parent, "root_dir", None) or os.getcwd()
        try:
            project = load_project(root)
            settings = load_settings()
        except Exception as exc:  # a broken labwork.toml: keep Jupyter usable, say why in the log
            self.log.error("labwork: cannot read project at %s: %s", root, exc)
            return {}
        raw = envvars.get(envvars.SERVER_CONFIG)
        server_config = json.loads(raw) if raw else None
        specs = _specs().project_kernel_specs(project, settings, server_config, envvars.get(envvars.URL))
        for problem in project.problems:
            self.log.warning("labwork: %s", problem)
        return specs

    def find_kernel_specs(self) -> dict[str, str]:
        PREFIX, RESOURCES = _specs().PREFIX, _specs().RESOURCES  # noqa: N806
        found = {k: v for k, v in super().find_kernel_specs().items() if not k.startswith(PREFIX)}
        for name in self._labwork_specs():
            found[name] = str(RESOURCES)
        return found

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        PREFIX, RESOURCES = _specs().PREFIX, _specs().RESOURCES  # noqa: N806
        if kernel_name.lower().startswith(PREFIX):
            spec = self._labwork_specs().get(kernel_name.lower())
            if spec is None:
                raise NoSuchKernel(kernel_name)
            return self.kernel_spec_class(resource_dir=str(RESOURCES), **spec)
        return super().get_kernel_spec(kernel_name)

    def get_all_specs(self) -> dict[str, Any]:
        PREFIX, RESOURCES = _specs().PREFIX, _specs().RESOURCES  # noqa: N806
        res: dict[str, Any] = {}
        for name, resource_dir in super().find_kernel_specs().items():
            if name.startswith(PREFIX):
                continue
            try:
                res[name] = {"resource_dir": resource_dir,
                             "spec": super().get_kernel_spec(name).to_dict()}
            except Exception:  # noqa: BLE001 - one bad stock spec must not hide the others
                self.log.warning("Error loading kernelspec %r", name, exc_info=True)
        for name, spec in self._labwork_specs().items():
            res[name] = {"resource_dir": str(RESOURCES),
                         "spec": self.kernel_spec_class(resource_dir=str(RESOURCES), **spec).to_dict()}
        return res
