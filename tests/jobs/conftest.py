"""Jobs tests: one control plane for the folder (a small local Spark for the PySpark and
sparkmagic jobs, a fast scheduler), real projects, real kernels run through papermill."""
from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ControlPlane
from tests.support.jupyter import stop_everything

JOBS_CONFIG = ('[gateway]\nmaster = "local[2]"\ndriver_memory = "512m"\nexecutor_memory = "512m"\n'
               '[jobs]\ntick_s = 0.2\nstop_grace_s = 10\n')


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The folder's shared control plane (one per module)."""
    plane = ControlPlane(tmp_path_factory.mktemp("jobs-home"), config=JOBS_CONFIG).start()
    yield plane
    stop_everything(plane)
    plane.stop()


@pytest.fixture
def project(cp: ControlPlane, tmp_path: Path) -> dict:
    """A fresh registered project with the `local` run configuration: {id, name, path}."""
    return cp.make_project(tmp_path / "proj", f"jobs-{secrets.token_hex(3)}")


def code_cell(source: str, tags: list[str] | None = None) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": None, "id": secrets.token_hex(4),
            "metadata": {"tags": tags or []}, "outputs": [], "source": source}


def write_notebook(path: Path, *cells: dict[str, Any], language: str = "python") -> Path:
    nb = {"cells": list(cells), "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": language},
                                             "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path
