"""Jobs on real kernels through papermill: typed parameters, a failing job's output notebook,
a kernel killed mid-run, a timeout, retries, the concurrency bound, webhooks, bad input."""
from __future__ import annotations

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.conftest import code_cell, write_notebook
from tests.support import ControlPlane, free_port, wait_for

FINAL = ("completed", "failed", "cancelled", "skipped", "missed")


def _api(cp: ControlPlane, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    with cp.client() as c:
        r = c.request(method, path, **kw)
    return r.status_code, (r.json() if "json" in r.headers.get("content-type", "") else r.content)


def _wait_run(cp: ControlPlane, pid: int, run_id: int, timeout: float = 240) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = cp.request("GET", f"/api/projects/{pid}/jobs/runs/{run_id}")
        return run if run["status"] in FINAL else None
    return wait_for(done, timeout=timeout, interval=0.3, what=f"job run {run_id} to end")


def _output(cp: ControlPlane, pid: int, run_id: int) -> dict[str, Any]:
    """The run's output notebook as the API serves it (application/x-ipynb+json)."""
    with cp.client() as c:
        r = c.get(f"/api/projects/{pid}/jobs/runs/{run_id}/output")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ipynb+json"), r.text
    return r.json()


def _create(cp: ControlPlane, project: dict, **body: Any) -> dict[str, Any]:
    code, out = _api(cp, "POST", f"/api/projects/{project['id']}/jobs", json=body)
    assert code == 201, out
    return out


def test_typed_parameters_on_the_local_kernel_and_run_history(cp: ControlPlane, project: dict) -> None:
    root = Path(project["path"])
    write_notebook(root / "typed.ipynb",
                   code_cell("n = 1\nxs = []\nd = {}\nday = '2000-01-01'\nrate = 0.1\nflag = False", ["parameters"]),
                   code_cell("assert type(n) is int and type(xs) is list and type(d) is dict, (n, xs, d)\n"
                             "assert type(rate) is float and flag is True and day == '2026-12-01'\n"
                             "from labwork import get_logger\n"
                             "get_logger().log('total', n + sum(xs) + d['a'])\n"
                             "print('total is', n + sum(xs) + d['a'])"))
    created = cp.cli("job", "create", "typed", "--notebook", "typed.ipynb", "--runconfig", "local",
                     "-p", "n=3", "--json", cwd=root)
    job = json.loads(created.stdout)
    assert job["kernel"] == f"{project['name']} local" and job["parameters"] == {"n": 3}
    done = cp.cli("job", "run", "typed", "--wait", "--json", "-p", "xs=[1,2]", "-p", 'd={"a": 4}',
                  "-p", "rate=0.5", "-p", "flag=true", "-p", "day=2026-12-01", cwd=root)
    run = json.loads(done.stdout)
    assert run["status"] == "completed", run
    assert run["parameters"] == {"n": 3, "xs": [1, 2], "d": {"a": 4}, "rate": 0.5, "flag": True, "day": "2026-12-01"}
    assert len(run["config_hash"]) == 64 and len(run["notebook_hash"]) == 64 and run["duration_s"] > 0

    out_file = root / "out.ipynb"
    cp.cli("job", "output", str(run["id"]), "-o", str(out_file), cwd=root)
    nb = json.loads(out_file.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'xs = [1, 2]' in "".join(injected[0]["source"])
    texts = "".join(o.get("text", "") if isinstance(o.get("text"), str) else "".join(o.get("text", []))
                    for c in nb["cells"] for o in c.get("outputs", []))
    assert "total is 10" in texts

    log = cp.cli("job", "logs", str(run["id"]), cwd=root).stdout
    assert "[labwork]" in log and "completed" in log

    # run history is on for jobs: the run appears with its logged value
    def history() -> dict[str, Any] | None:
        r = cp.request("GET", f"/api/projects/{project['id']}/jobs/runs/{run['id']}")
        return r if r["history_run"] else None
    linked = wait_for(history, timeout=60, what="the job run's run-history link")
    hist = wait_for(lambda: (lambda h: h if h.get("values") else None)(
        cp.request("GET", f"/api/runs/{linked['history_run']}")), timeout=60, what="the logged value")
    assert "total" in json.dumps(hist["values"]) and hist["notebook"] == "typed.ipynb"


def test_a_failing_job_keeps_its_output_notebook_and_wait_exits_non_zero(cp: ControlPlane, project: dict) -> None:
    root = Path(project["path"])
    write_notebook(root / "fails.ipynb", code_cell("x = 1"),
                   code_cell("raise ValueError('bad input file')"), code_cell("print('never')"))
    cp.cli("job", "create", "fails", "--notebook", "fails.ipynb", cwd=root)
    proc = cp.cli("job", "run", "fails", "--wait", "--json", cwd=root, check=False)
    assert proc.returncode == 1, proc.stderr
    run = json.loads(proc.stdout)
    assert run["status"] == "failed" and "ValueError" in run["reason"] and "bad input file" in run["reason"]
    assert run["output_kept"]
    nb = _output(cp, project["id"], run["id"])
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "ValueError" and errors[0]["traceback"]


def test_a_kernel_killed_mid_run_fails_the_run_with_the_reason(cp: ControlPlane, project: dict) -> None:
    root = Path(project["path"])
    pidfile = root / "kernel.pid"
    write_notebook(root / "long.ipynb",
                   code_cell(f"import os, time\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))"),
                   code_cell("time.sleep(600)"))
    _create(cp, project, name="long", notebook="long.ipynb")
    _, run = _api(cp, "POST", f"/api/projects/{project['id']}/jobs/long/runs", json={})
    kernel_pid = wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() and int(pidfile.read_text()),
                          timeout=120, what="the kernel's pid")
    os.kill(kernel_pid, signal.SIGKILL)
    ended = _wait_run(cp, project["id"], run["id"], timeout=60)
    assert ended["status"] == "failed" and "SIGKILL" in ended["reason"], ended
    assert ended["exit_code"] == -9 and ended["output_kept"]


def test_a_timeout_ends_the_run_and_says_so(cp: ControlPlane, project: dict) -> None:
    root = Path(project["path"])
    write_notebook(root / "slow.ipynb", code_cell("print('started', flush=True)"),
                   code_cell("import time\ntime.sleep(600)"))
    # long enough for the runner and the kernel to start on a loaded machine, so the first cell has run
    _create(cp, project, name="slow", notebook="slow.ipynb", timeout="20s")
    _, run = _api(cp, "POST", f"/api/projects/{project['id']}/jobs/slow/runs", json={})
    ended = _wait_run(cp, project["id"], run["id"], timeout=180)
    assert ended["status"] == "failed" and ended["reason"].startswith("timed out after 20 s"), ended
    assert "started" in json.dumps(_output(cp, project["id"], run["id"]))  # the cells that ran are kept


def test_retries_run_again_after_a_back_off(cp: ControlPlane, project: dict) -> None:
    root = Path(project["path"])
    tries = root / "tries.txt"
    write_notebook(root / "flaky.ipynb",
                   code_cell(f"with open({str(tries)!r}, 'a') as f: f.write('x')\n"
                             f"assert len(open({str(tries)!r}).read()) >= 2, 'first try fails'"))
    _create(cp, project, name="flaky", notebook="flaky.ipynb", retries=2, retry_delay="1s")
    _, first = _api(cp, "POST", f"/api/projects/{project['id']}/jobs/flaky/runs", json={})
    assert _wait_run(cp, project["id"], first["id"])["status"] == "failed"

    def retried() -> list[dict[str, Any]] | None:
        runs = cp.request("GET", f"/api/projects/{project['id']}/jobs/flaky/runs")
        return runs if any(r["status"] == "completed" for r in runs) else None
    runs = wait_for(retried, timeout=240, what="the retry to complete")
    retry = next(r for r in runs if r["status"] == "completed")
    assert retry["trigger"] == "retry" and retry["attempt"] == 2 and retry["retry_of"] == first["id"]
    assert len(runs) == 2 and tries.read_text() == "xx"  # no third run after the success


def test_concurrency_bound_skips_and_records_then_cancel(cp: ControlPlane, project: dict) -> None:
    root = Path(project["path"])
    write_notebook(root / "wait.ipynb", code_cell("import time\ntime.sleep(600)"))
    _create(cp, project, name="wait", notebook="wait.ipynb")
    _, one = _api(cp, "POST", f"/api/projects/{project['id']}/jobs/wait/runs", json={})
    _, two = _api(cp, "POST", f"/api/projects/{project['id']}/jobs/wait/runs", json={})
    assert one["status"] in ("queued", "starting", "running")
    assert two["status"] == "skipped" and "at most 1 at once" in two["reason"]
    wait_for(lambda: cp.request("GET", f"/api/projects/{project['id']}/jobs/runs/{one['id']}")["status"] == "running",
             timeout=60, what="the run to start")
    cancelled = json.loads(cp.cli("job", "cancel", str(one["id"]), "--json", cwd=root).stdout)
    assert cancelled["id"] == one["id"]
    ended = _wait_run(cp, project["id"], one["id"], timeout=120)
    assert ended["status"] == "cancelled" and ended["reason"] == "cancelled by the user"


class _Hook(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(body)
        self.send_response(500 if len(type(self).calls) == 1 else 204)  # the first try fails
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_webhook_is_called_on_failure_and_retried(cp: ControlPlane, project: dict) -> None:
    server = HTTPServer(("127.0.0.1", free_port()), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        root = Path(project["path"])
        write_notebook(root / "hooked.ipynb", code_cell("1 / 0"))
        url = f"http://127.0.0.1:{server.server_port}/hook"
        _create(cp, project, name="hooked", notebook="hooked.ipynb", webhook_url=url)
        _, run = _api(cp, "POST", f"/api/projects/{project['id']}/jobs/hooked/runs", json={})
        assert _wait_run(cp, project["id"], run["id"])["status"] == "failed"
        wait_for(lambda: len(_Hook.calls) >= 2, timeout=60, what="the webhook's second try")
        body = _Hook.calls[-1]
        assert body["job"] == "hooked" and body["run"] == run["id"] and body["status"] == "failed"
        assert "ZeroDivisionError" in body["reason"]
        assert body["link"] == f"{cp.url}/projects/{project['id']}/jobs/runs/{run['id']}"
        log = cp.cli("job", "logs", str(run["id"]), cwd=root).stdout
        assert "webhook delivered (HTTP 204, attempt 2)" in wait_for(
            lambda: (lambda t: t if "webhook" in t else None)(cp.cli("job", "logs", str(run["id"]), cwd=root).stdout),
            timeout=30, what="the webhook's outcome in the log") or log
    finally:
        server.shutdown()


@pytest.mark.parametrize("body, status, words", [
    ({"name": "c", "notebook": "ok.ipynb", "schedule": "every minute"}, 400, "fields"),
    ({"name": "c", "notebook": "ok.ipynb", "schedule": "61 * * * *"}, 400, "does not parse"),
    ({"name": "c", "notebook": "ok.ipynb", "schedule": "0 6 * * *", "timezone": "Mars/Olympus"}, 400, "does not exist"),
    ({"name": "c", "notebook": "../outside.ipynb"}, 403, "leaves the project"),
    ({"name": "c", "notebook": "ok.ipynb", "parameters": {"n": 1}}, 400, "no cell tagged 'parameters'"),
    ({"name": "c", "notebook": "ok.ipynb", "runconfig": "nope"}, 404, "nope"),
    ({"name": "c", "notebook": "ok.ipynb", "timeout": "soon"}, 400, "duration"),
    ({"name": "../c", "notebook": "ok.ipynb"}, 400, "name"),
    ({"name": "c", "notebook": "ok.ipynb", "webhook_url": "file:///etc/passwd"}, 400, "http"),
])
def test_bad_input_is_a_clear_error_and_creates_nothing(cp: ControlPlane, project: dict, body: dict,
                                                        status: int, words: str) -> None:
    root = Path(project["path"])
    write_notebook(root / "ok.ipynb", code_cell("print(1)"))
    (root.parent / "outside.ipynb").write_text("{}")
    code, out = _api(cp, "POST", f"/api/projects/{project['id']}/jobs", json=body)
    assert code == status, out
    assert words in json.dumps(out), out
    assert cp.request("GET", f"/api/projects/{project['id']}/jobs") == []


def test_a_parameter_that_is_not_k_v_is_refused_by_the_cli(cp: ControlPlane, project: dict) -> None:
    root = Path(project["path"])
    write_notebook(root / "p.ipynb", code_cell("n = 1", ["parameters"]))
    proc = cp.cli("job", "create", "p", "--notebook", "p.ipynb", "-p", "n3", cwd=root, check=False)
    assert proc.returncode == 2 and "is not k=v" in proc.stderr and "Traceback" not in proc.stderr
    assert cp.request("GET", f"/api/projects/{project['id']}/jobs") == []
