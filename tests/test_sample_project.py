"""The sample project that `make run` serves: its notebook runs in "myIris local" and lands in
run history with its logged accuracy and its uploaded model."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from labwork.kernels.specmanager import LabworkKernelSpecManager
from labwork.project import load_project
from tests.support import REPO, ControlPlane


@pytest.mark.slow
def test_iris_notebook_runs_and_is_recorded(control_plane: ControlPlane, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "iris"
    shutil.copytree(REPO / "examples" / "iris", root, ignore=shutil.ignore_patterns("*.pkl"))
    project = load_project(root)
    assert project.name == "myIris" and not project.problems
    monkeypatch.setenv("LABWORK_HOME", str(control_plane.home))
    monkeypatch.setenv("LABWORK_PROJECT_DIR", str(root))
    monkeypatch.setenv("LABWORK_URL", control_plane.url)
    monkeypatch.setenv("JPY_SESSION_NAME", str(root / "iris.ipynb"))

    nb = nbformat.read(root / "iris.ipynb", as_version=4)
    km = KernelManager(kernel_spec_manager=LabworkKernelSpecManager(), kernel_name="labwork-local")
    NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(root)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], outputs
    assert any("image/png" in o.get("data", {}) for o in outputs)

    with control_plane.client() as c:
        for _ in range(100):  # delivery is asynchronous by design
            runs = c.get("/api/runs", params={"notebook": "iris.ipynb"}).json()
            items = runs["runs"] if isinstance(runs, dict) else runs
            if items:
                run = c.get(f"/api/runs/{items[0]['id']}").json()
                if run.get("artifacts") and run.get("values") and len(run["entries"]) >= 5:
                    break
            time.sleep(0.2)
    names = {v["name"] for v in run["values"]}
    assert {"accuracy", "accuracy_by_C"} <= names
    assert [a["path"] for a in run["artifacts"]] == ["outputs/model.pkl"]
    assert len(run["entries"]) == len(nb.cells) - 2  # every code cell after `history on`
    assert all(e["status"] == "ok" for e in run["entries"])
