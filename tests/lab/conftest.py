"""Fixtures for labwork's JupyterLab extension: one control plane whose servers warn 75 and 30 s
before their deadline (so "15 minutes" is seconds here), with JupyterLab's autosave off (only the
extension's save before stop can put an unsaved edit on disk), and projects with a notebook.

Everything started here is stopped here (tests/support/jupyter.py `stop_everything`).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.support import ControlPlane
from tests.support.jupyter import NOTEBOOK_ENV, stop_everything

WARN_BEFORE_S = (75, 30)
CONFIG = f"warn_before_s = {list(WARN_BEFORE_S)}\nsave_before_stop_s = 20\n"


def lab_settings(folder: Path) -> Path:
    """JupyterLab user settings with autosave off."""
    plugin = folder / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(json.dumps({"autosave": False}))
    return folder


@pytest.fixture(scope="session")
def lab_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    home = tmp_path_factory.mktemp("lab-home")
    env = {**NOTEBOOK_ENV, "JUPYTERLAB_SETTINGS_DIR": str(lab_settings(home / "lab-settings")),
           # the ends file when the manager sets none (issue 13's "death" part sets one per server)
           "LABWORK_KERNEL_ENDS": str(home / "kernel-ends.jsonl")}
    cp = ControlPlane(home, env=env, config=CONFIG).start()
    yield cp
    stop_everything(cp)


@pytest.fixture(scope="session")
def make_project(lab_cp: ControlPlane, tmp_path_factory: pytest.TempPathFactory
                 ) -> Callable[..., dict[str, Any]]:
    """A fresh registered project with `work.ipynb` (one empty code cell, the project's local
    kernel) for each call."""
    counter = iter(range(1, 10_000))

    def make() -> dict[str, Any]:
        name = f"lab{next(counter)}"
        project = lab_cp.make_project(tmp_path_factory.mktemp("projects") / name, name)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")])
        nb.metadata["kernelspec"] = {"name": "labwork-local", "display_name": f"{name} local", "language": "python"}
        nbformat.write(nb, Path(project["path"]) / "work.ipynb")
        return project

    return make
