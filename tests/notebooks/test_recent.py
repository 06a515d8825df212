"""Kernel launches recorded by the control plane, recent notebooks, and opening a notebook with
the configuration it last ran with."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import nbformat

from tests.support import wait_for
from tests.support.jupyter import jupyter


def write_notebook(root: Path, rel: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(), root / rel)


def launched(api: httpx.Client, project: dict[str, Any], notebook: str | None, config: dict | None,
             runconfig: str = "local", server_id: int | None = None) -> dict[str, Any]:
    body = {"project_path": project["path"], "runconfig": runconfig, "notebook": notebook,
            "kernel_id": "k-" + (notebook or "none"), "server_id": server_id, "server_config": config}
    r = api.post("/api/kernels/launched", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_recent_newest_first_one_row_per_notebook(make_project, api: httpx.Client) -> None:
    project = make_project()
    root = Path(project["path"])
    write_notebook(root, "a.ipynb")
    write_notebook(root, "sub/b.ipynb")
    launched(api, project, "a.ipynb", {"kind": "python", "hours": 2})
    launched(api, project, str(root / "sub" / "b.ipynb"), {"kind": "spark", "spark": {"driver_memory": "2g"}},
             runconfig="cluster")  # an absolute JPY_SESSION_NAME is stored relative to the project
    launched(api, project, "a.ipynb", {"kind": "python", "ui": "classic", "hours": None})
    launched(api, project, "gone.ipynb", {})
    launched(api, project, None, {})  # a console without a notebook is not listed
    recent = api.get(f"/api/projects/{project['id']}/notebooks/recent").json()
    assert [r["notebook"] for r in recent] == ["gone.ipynb", "a.ipynb", "sub/b.ipynb"]
    by_nb = {r["notebook"]: r for r in recent}
    assert by_nb["a.ipynb"]["server_config"]["ui"] == "classic"  # the newest launch wins
    assert by_nb["a.ipynb"]["server_config"]["hours"] is None
    assert by_nb["sub/b.ipynb"]["runconfig"] == "cluster"
    assert by_nb["sub/b.ipynb"]["server_config"]["spark"]["driver_memory"] == "2g"
    assert by_nb["gone.ipynb"]["exists"] is False and by_nb["a.ipynb"]["exists"] is True


def test_launch_with_bad_config_is_refused(make_project, api: httpx.Client) -> None:
    project = make_project()
    r = api.post("/api/kernels/launched", json={"project_path": project["path"], "runconfig": "local",
                                                "notebook": "x.ipynb", "server_config": {"hours": -1}})
    assert r.status_code == 400
    assert api.get(f"/api/projects/{project['id']}/notebooks/recent").json() == []


def test_open_starts_with_the_last_configuration_then_reuses(make_project, api: httpx.Client) -> None:
    project = make_project()
    pid = project["id"]
    root = Path(project["path"])
    write_notebook(root, "work/analysis one.ipynb")
    launched(api, project, "work/analysis one.ipynb", {"kind": "python", "ui": "classic", "hours": 3})
    opened = api.post(f"/api/projects/{pid}/notebooks/open", json={"notebook": "work/analysis one.ipynb"}).json()
    server = opened["server"]
    assert opened["started"] is True and opened["note"] is None
    assert opened["config"]["ui"] == "classic" and opened["config"]["hours"] == 3
    assert opened["url"] == f"{server['base_url']}/notebooks/work/analysis%20one.ipynb?token={server['token']}"
    assert httpx.get(opened["url"], timeout=30).status_code == 200
    # open again, and another notebook that last ran elsewhere: the running server is reused
    write_notebook(root, "other.ipynb")
    launched(api, project, "other.ipynb", {"kind": "spark"})
    again = api.post(f"/api/projects/{pid}/notebooks/open", json={"notebook": "other.ipynb"}).json()
    assert again["started"] is False and again["server"]["id"] == server["id"]
    assert "differs" in again["note"]
    assert api.post(f"/api/projects/{pid}/notebooks/open", json={"notebook": "../x.ipynb"}).status_code == 403
    assert api.post(f"/api/projects/{pid}/notebooks/open", json={"notebook": "nope.ipynb"}).status_code == 404
    api.delete(f"/api/projects/{pid}/server").raise_for_status()


def test_open_a_notebook_that_never_ran_uses_defaults(make_project, api: httpx.Client) -> None:
    project = make_project()
    write_notebook(Path(project["path"]), "new.ipynb")
    opened = api.post(f"/api/projects/{project['id']}/notebooks/open", json={"notebook": "new.ipynb"}).json()
    assert opened["started"] and opened["last_config"] is None
    assert opened["config"]["ui"] == "lab" and "/lab/tree/new.ipynb?token=" in opened["url"]
    api.delete(f"/api/projects/{project['id']}/server").raise_for_status()


def test_a_kernel_started_by_the_server_is_recorded(make_project, api: httpx.Client) -> None:
    """End to end: a labwork kernel started for a notebook session reports itself to the control plane."""
    project = make_project()
    pid = project["id"]
    write_notebook(Path(project["path"]), "run.ipynb")
    server = api.post(f"/api/projects/{pid}/server", json={"hours": 1}).json()
    with jupyter(server) as j:
        specs = j.get("/api/kernelspecs").json()["kernelspecs"]
        name = next(n for n, s in specs.items() if s["spec"]["display_name"] == f"{project['name']} local")
        r = j.post("/api/sessions", json={"path": "run.ipynb", "type": "notebook", "name": "run.ipynb",
                                           "kernel": {"name": name}})
        assert r.status_code == 201, r.text
        kernel_id = r.json()["kernel"]["id"]
    recent = wait_for(lambda: api.get(f"/api/projects/{pid}/notebooks/recent").json(), timeout=60)
    assert recent[0]["notebook"] == "run.ipynb" and recent[0]["runconfig"] == "local"
    assert recent[0]["server_id"] == server["id"] and recent[0]["kernel_id"] == kernel_id
    assert recent[0]["server_config"]["hours"] == 1
    status = api.get(f"/api/projects/{pid}/server").json()
    assert [k["notebook"] for k in status["kernels"]] == ["run.ipynb"]
    api.delete(f"/api/projects/{pid}/server").raise_for_status()
