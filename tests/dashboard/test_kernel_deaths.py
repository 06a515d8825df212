"""Why a kernel died, end to end: a real control plane starts a real JupyterLab whose kernel of a
256 MiB run configuration allocates past its limit (and another kills itself): `labwork notebook
status` (and its JSON), the server log, the dashboard's Jupyter page and run history all say why."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from jupyter_client import BlockingKernelClient
from playwright.sync_api import expect

from labwork.kernels import cgroups
from tests.support.browser import login, shot
from tests.support.waiting import wait_for

OOM = "out of memory (limit 256 MiB)"
SUPPORT = cgroups.detect()
pytestmark = pytest.mark.skipif(SUPPORT.kind not in ("cgroup1", "cgroup2"),
                                reason=f"no memory cgroup for kernels here: {SUPPORT.why}")


def _kernel_client(server: dict[str, Any], kernel_id: str) -> BlockingKernelClient:
    """A client of the server's kernel, from the connection file on the kernel's command line."""
    def conn_file() -> str | None:
        for p in psutil.Process(server["pid"]).children(recursive=True):
            for arg in p.cmdline():
                if arg.endswith(f"kernel-{kernel_id}.json"):
                    return arg
        return None
    path = wait_for(conn_file, timeout=60, what="the kernel process")
    kc = BlockingKernelClient(connection_file=path)
    kc.load_connection_file()
    kc.start_channels(hb=False)  # no heartbeat: a kernel slow to start is not taken for dead
    kc.wait_for_ready(timeout=120)
    return kc


def _status(http: httpx.Client, project: dict) -> dict[str, Any]:
    return http.get(f"/api/projects/{project['id']}/server").json()


def test_out_of_memory_and_sigkill_are_said_everywhere(cp, page, project: dict) -> None:
    root = Path(project["path"])
    (root / ".labwork" / "runconfig" / "small.toml").write_text(
        'target = "local"\nhistory = true\n[resources]\nmemory = "256m"\n')
    with httpx.Client(base_url=cp.url, headers=cp.headers(), timeout=300) as http:  # a loaded machine
        server = http.post(f"/api/projects/{project['id']}/server", json={"hours": 1}).json()
        with httpx.Client(base_url=server["base_url"], headers={"Authorization": f"token {server['token']}"},
                          timeout=60) as jup:
            specs = jup.get("/api/kernelspecs").json()["kernelspecs"]
            [name] = [n for n, k in specs.items() if k["spec"]["display_name"] == f"{project['name']} small"]
            kernel_id = jup.post("/api/sessions", json={"path": "big.ipynb", "type": "notebook", "name": "big.ipynb",
                                                        "kernel": {"name": name}}).json()["kernel"]["id"]
            # JupyterLab's status bar (jupyter-resource-usage): the server's memory against the kernel's limit
            metrics = wait_for(lambda: (m := jup.get("/api/metrics/v1").json())["limits"]["memory"]["rss"] and m,
                               timeout=60, what="the limit in /api/metrics/v1")
            assert 256 << 20 < metrics["limits"]["memory"]["rss"] <= metrics["rss"] + (256 << 20)
        kc = _kernel_client(server, kernel_id)
        try:
            kc.execute_interactive("1 + 1", timeout=60)  # history is on: the kernel's run exists
            run = wait_for(lambda: [r for r in cp.runs(project=project["name"]) if r["kernel_id"] == kernel_id],
                           timeout=60, what="the kernel's run")[0]
            kc.execute("x = b'\\x01' * (600 << 20)")
            died = wait_for(lambda: (s := _status(http, project))["kernels"] and s["kernels"][0]["end_reason"] and s,
                            timeout=120, what="the kernel's death in status")
        finally:
            kc.stop_channels()
        k = died["kernels"][0]
        assert k["id"] == kernel_id and k["end_reason"] == OOM
        assert k["end"]["oom"] is True and k["end"]["memory_limit"] == 256 << 20
        assert died["kernel_ends"][0]["reason"] == OOM and died["kernel_ends"][0]["run_config"] == "small"

        # run history: the run ended, failed, with that reason (not "kernel stopped reporting")
        ended = wait_for(lambda: (r := http.get(f"/api/runs/{run['id']}").json())["ended_at"] and r, timeout=60)
        assert ended["status"] == "failed" and ended["info"]["end_reason"] == OOM

        # the server log has one line for it
        log = http.get(f"/api/projects/{project['id']}/server/logs").json()["text"]
        assert sum(f"kernel {kernel_id}" in ln and OOM in ln for ln in log.splitlines()) == 1

        # `labwork notebook status`, for a person and as JSON
        human = cp.cli("notebook", "status", str(root)).stdout
        assert f"last died: {OOM}" in human and "kernels that died:" in human
        as_json = json.loads(cp.cli("notebook", "status", str(root), "--json").stdout)
        assert as_json["kernels"][0]["end_reason"] == OOM

        # the restarted kernel kills itself: the newest end says so
        kc = _kernel_client(server, kernel_id)
        try:
            kc.execute("import os; os.kill(os.getpid(), 9)")
            wait_for(lambda: _status(http, project)["kernel_ends"][0]["reason"] == "killed by signal 9 (SIGKILL)"
                     and len(_status(http, project)["kernel_ends"]) == 2, timeout=120, what="the second death")
        finally:
            kc.stop_channels()

    login(page, cp, f"/projects/{project['id']}/jupyter")
    expect(page.locator("#kernels .kernel-end")).to_contain_text("killed by signal 9 (SIGKILL)")
    expect(page.locator("#kernel-ends")).to_contain_text(OOM)
    expect(page.locator("#kernel-ends")).to_contain_text("small")
    shot(page, "jupyter-kernel-deaths")
    page.goto(f"{cp.url}/runs/{run['id']}")
    expect(page.locator("#end-reason")).to_have_text(OOM)
