"""Real Jupyter servers started, watched, extended and stopped by a real control plane."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest

from labwork.processes import free_port, pid_alive
from tests.support import wait_for
from tests.support.jupyter import jupyter


@pytest.fixture(scope="module")
def running(make_project, api: httpx.Client) -> dict[str, Any]:
    """One project with a running JupyterLab server, shared by the read-only tests."""
    project = make_project("shared")
    r = api.post(f"/api/projects/{project['id']}/server", json={"hours": 2})
    assert r.status_code == 201, r.text
    return r.json()


def test_control_plane_status_needs_the_token(nb_cp, api: httpx.Client) -> None:
    assert httpx.get(f"{nb_cp.url}/api/status", timeout=10).status_code == 401
    assert httpx.get(f"{nb_cp.url}/api/servers", timeout=10).status_code == 401
    assert httpx.get(f"{nb_cp.url}/api/status", headers={"Authorization": "Bearer wrong"},
                     timeout=10).status_code == 401
    r = api.get("/api/status")
    assert r.status_code == 200 and r.json()["ok"] is True


def test_start_answers_jupyter_rest_api(running: dict[str, Any], api: httpx.Client) -> None:
    assert running["state"] == "running"
    assert running["url"] == f"{running['base_url']}/lab?token={running['token']}"
    assert running["port"] >= 8888
    assert running["config"]["kind"] == "python" and running["config"]["hours"] == 2
    assert 0 < running["seconds_left"] <= 2 * 3600
    with jupyter(running) as j:
        assert j.get("/api/status").status_code == 200
        specs = j.get("/api/kernelspecs").json()
        assert specs["kernelspecs"], specs
        root = j.get("/api/contents").json()
        assert {c["name"] for c in root["content"]} >= {"labwork.toml"}  # the project folder is the root
    # a wrong token is refused by the Jupyter server
    assert httpx.get(f"{running['base_url']}/api/status", timeout=10).status_code in (401, 403)
    listed = api.get("/api/servers").json()
    assert running["id"] in [s["id"] for s in listed]
    mine = next(s for s in listed if s["id"] == running["id"])
    assert mine["project"]["name"] == "shared"


def test_token_is_not_on_the_command_line(running: dict[str, Any]) -> None:
    cmdline = Path(f"/proc/{running['pid']}/cmdline").read_bytes().decode()
    assert running["token"] not in cmdline
    assert f"--ServerApp.port={running['port']}" in cmdline
    environ = Path(f"/proc/{running['pid']}/environ").read_bytes().decode(errors="replace").split("\0")
    assert f"LABWORK_SERVER_ID={running['id']}" in environ
    assert any(e.startswith("LABWORK_SERVER_CONFIG={") for e in environ)
    assert "LABWORK_PROJECT=shared" in environ


def test_second_start_is_refused_with_where_it_runs(running: dict[str, Any], api: httpx.Client) -> None:
    pid = running["project"]["id"]
    r = api.post(f"/api/projects/{pid}/server", json={"hours": 2})
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "Conflict"
    assert running["base_url"] in body["msg"] and "already runs" in body["msg"]
    r = api.post(f"/api/projects/{pid}/server", json={"kind": "spark"})
    assert r.status_code == 409
    assert "changing the configuration needs a stop first" in r.json()["msg"]
    assert "kind" in r.json()["msg"]
    assert api.get(f"/api/projects/{pid}/server").json()["id"] == running["id"]  # untouched


def test_bad_configs_change_nothing(running: dict[str, Any], make_project, api: httpx.Client) -> None:
    project = make_project()
    for body, expected in [({"hours": -1}, "hours must be more than 0"),
                           ({"kind": "spark", "spark": {"properties": "a=1\nnot a property"}}, "line 2"),
                           ({"spark": {"driver_memory": "lots"}}, "JVM size"),
                           ({"flavour": "x"}, "unknown setting 'flavour'")]:
        r = api.post(f"/api/projects/{project['id']}/server", json=body)
        assert r.status_code == 400, r.text
        assert expected in r.json()["msg"], r.json()
    status = api.get(f"/api/projects/{project['id']}/server").json()
    assert status["state"] == "none" and status["id"] is None
    before = api.get(f"/api/projects/{running['project']['id']}/server").json()
    r = api.post(f"/api/projects/{running['project']['id']}/server/extend", json={"hours": -3})
    assert r.status_code == 400 and "hours must be more than 0" in r.json()["msg"]
    after = api.get(f"/api/projects/{running['project']['id']}/server").json()
    assert after["deadline"] == before["deadline"] and after["state"] == "running"


def test_extend_and_no_limit(make_project, api: httpx.Client) -> None:
    project = make_project()
    pid = project["id"]
    assert api.post(f"/api/projects/{pid}/server/extend", json={"hours": 1}).status_code == 404
    started = api.post(f"/api/projects/{pid}/server", json={"hours": 1}).json()
    extended = api.post(f"/api/projects/{pid}/server/extend", json={"hours": 6}).json()
    gained = (time_of(extended["deadline"]) - time_of(started["deadline"]))
    assert abs(gained - 6 * 3600) < 5
    assert extended["seconds_left"] > 6.9 * 3600
    default = api.post(f"/api/projects/{pid}/server/extend", json={}).json()  # settings.extend_hours = 6
    assert abs(time_of(default["deadline"]) - time_of(extended["deadline"]) - 6 * 3600) < 5
    unlimited = api.post(f"/api/projects/{pid}/server/extend", json={"hours": None}).json()
    assert unlimited["deadline"] is None and unlimited["seconds_left"] is None and unlimited["no_limit"]
    log = api.get(f"/api/projects/{pid}/server/logs").json()["text"]
    assert "deadline extended by 6 h" in log and "time limit removed" in log
    assert api.delete(f"/api/projects/{pid}/server").json()["state"] == "stopped"


def time_of(iso: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(iso).timestamp()


def test_taken_port_gives_the_next_one(make_project, api: httpx.Client) -> None:
    project = make_project()
    taken = free_port("127.0.0.1", 8888)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", taken))
        sock.listen()
        r = api.post(f"/api/projects/{project['id']}/server", json={"hours": 1})
        assert r.status_code == 201, r.text
        server = r.json()
        assert server["port"] > taken
        with jupyter(server) as j:
            assert j.get("/api/status").status_code == 200
    api.delete(f"/api/projects/{project['id']}/server")


def test_classic_ui_answers_at_tree(make_project, api: httpx.Client) -> None:
    project = make_project()
    server = api.post(f"/api/projects/{project['id']}/server", json={"ui": "classic", "hours": 1}).json()
    assert server["ui"] == "classic"
    assert server["url"] == f"{server['base_url']}/tree?token={server['token']}"
    r = httpx.get(server["url"], timeout=30)
    assert r.status_code == 200 and "notebook" in r.text.lower()
    api.delete(f"/api/projects/{project['id']}/server")


def test_deadline_stops_the_server_and_logs_remain(make_project, api: httpx.Client) -> None:
    project = make_project()
    pid = project["id"]
    server = api.post(f"/api/projects/{pid}/server", json={"hours": 0.001}).json()  # 3.6 s
    assert server["state"] == "running" and server["seconds_left"] <= 4
    status = wait_for(lambda: (s := api.get(f"/api/projects/{pid}/server").json())["state"] == "stopped" and s,
                      timeout=90)
    assert status["stop_reason"].startswith("deadline reached")
    assert status["url"] is None and status["seconds_left"] is None
    assert not pid_alive(server["pid"])
    log = api.get(f"/api/projects/{pid}/server/logs", params={"server_id": server["id"]}).json()
    assert log["active"] is False and log["state"] == "stopped"
    assert "Jupyter Server" in log["text"]  # the server's own output is kept
    assert "stopping the server: deadline reached" in log["text"]
    assert "server stopped: deadline reached" in log["text"] and "shut down cleanly" in log["text"]
    r = api.get(f"/api/projects/{pid}/server/logs/download")
    assert r.status_code == 200 and r.text == log["text"] and "attachment" in r.headers["content-disposition"]
    assert api.delete(f"/api/projects/{pid}/server").status_code == 404


def test_stop_shuts_kernels_down(make_project, api: httpx.Client) -> None:
    project = make_project()
    pid = project["id"]
    server = api.post(f"/api/projects/{pid}/server", json={"hours": 1}).json()
    with jupyter(server) as j:
        specs = j.get("/api/kernelspecs").json()["kernelspecs"]
        spec = next(n for n, s in specs.items() if s["spec"]["display_name"] == f"{project['name']} local")
        kernel = j.post("/api/kernels", json={"name": spec}).json()
    status = wait_for(lambda: (s := api.get(f"/api/projects/{pid}/server").json())["kernels"] and s, timeout=60)
    assert status["kernels"][0]["id"] == kernel["id"]
    assert status["kernels"][0]["display_name"] == f"{project['name']} local"
    import psutil
    kernel_pids = [c.pid for c in psutil.Process(server["pid"]).children(recursive=True)]
    assert kernel_pids
    stopped = api.delete(f"/api/projects/{pid}/server", params={"reason": "test is over"}).json()
    assert stopped["state"] == "stopped" and stopped["stop_reason"] == "test is over"
    wait_for(lambda: not any(pid_alive(p) for p in kernel_pids), timeout=30)
    assert "test is over" in api.get(f"/api/projects/{pid}/server/logs").json()["text"]


def test_logs_follow_by_offset(running: dict[str, Any], api: httpx.Client) -> None:
    pid = running["project"]["id"]
    first = api.get(f"/api/projects/{pid}/server/logs").json()
    assert first["server_id"] == running["id"] and first["active"] and first["eof"]
    assert first["offset"] == len(first["text"].encode()) == first["size"]
    with jupyter(running) as j:
        j.get("/api/this-does-not-exist")  # makes the server log a 404 line
    more = wait_for(lambda: (m := api.get(f"/api/projects/{pid}/server/logs",
                                          params={"offset": first["offset"]}).json())["text"] and m, timeout=30)
    assert more["offset"] > first["offset"]
    assert "this-does-not-exist" in more["text"]
    r = api.get(f"/api/projects/{pid}/server/logs", params={"server_id": 999999})
    assert r.status_code == 404


def test_log_retention_keeps_the_last_runs(make_project, api: httpx.Client, nb_cp) -> None:
    project = make_project()
    pid = project["id"]
    for _ in range(4):  # LABWORK_LOGS_KEPT_PER_PROJECT=3 in these tests
        api.post(f"/api/projects/{pid}/server", json={"hours": 1}).raise_for_status()
        api.delete(f"/api/projects/{pid}/server").raise_for_status()
    history = api.get(f"/api/projects/{pid}/servers").json()
    assert [h["log_kept"] for h in history] == [True, True, True, False]
    r = api.get(f"/api/projects/{pid}/server/logs", params={"server_id": history[-1]["id"]})
    assert r.status_code == 404 and "no longer kept" in r.json()["msg"]


def test_notebooks_list_preview_and_escape(running: dict[str, Any], api: httpx.Client, tmp_path: Path) -> None:
    pid = running["project"]["id"]
    root = Path(running["project"]["path"])
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# Hello\n<script>window.pwned=1</script>"))
    nbformat.write(nb, root / "hello.ipynb")
    (root / ".ipynb_checkpoints").mkdir(exist_ok=True)
    nbformat.write(nb, root / ".ipynb_checkpoints" / "hello-checkpoint.ipynb")
    outside = tmp_path / "outside.ipynb"
    nbformat.write(nb, outside)
    listed = api.get(f"/api/projects/{pid}/notebooks").json()
    assert [n["path"] for n in listed] == ["hello.ipynb"]
    r = api.get(f"/api/projects/{pid}/notebooks/preview", params={"path": "hello.ipynb"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<h1 id="Hello">' in r.text and "pwned" not in r.text
    assert "sandbox" in r.headers["content-security-policy"]
    for escape in ("../outside.ipynb", str(outside), "../../../../etc/passwd"):
        r = api.get(f"/api/projects/{pid}/notebooks/preview", params={"path": escape})
        assert r.status_code == 403, (escape, r.text)
        assert r.json()["error"] == "Forbidden"
    assert api.get(f"/api/projects/{pid}/notebooks/preview", params={"path": "nope.ipynb"}).status_code == 404


def test_unknown_project(api: httpx.Client) -> None:
    r = api.get("/api/projects/no-such-project/server")
    assert r.status_code == 404 and r.json()["error"] == "NotFound"
