"""A real kernel with the labwork extension, a real control plane: what the store ends up holding."""
from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from tests.support import ControlPlane, wait_for
from tests.support.kernels import kernel_env, spool_records


def _ended_run(cp: ControlPlane, **filters):
    def done():
        runs = cp.runs(**filters)
        return runs if runs and all(r["status"] != "running" for r in runs) else None
    return wait_for(done, what=f"ended runs {filters}")


NOTEBOOK_CELLS = [
    "x = 1",                                                                   # history off
    "from labwork import get_logger\nlog = get_logger()\nlog.log('before', 1)",
    "%labwork history on",
    "log.log('loss', [0.9, 0.5])\nlog.log('loss', 0.25)\nlog.log('note', 'hello')",   # 1 ok
    "1/0",                                                                     # 2 error
    "",                                                                        # empty: no entry
    "def f(:\n    pass",                                                        # 3 SyntaxError
    "import asyncio\nawait asyncio.sleep(0)\ny = 2\ny",                        # 4 top-level await
    "get_ipython().run_cell('z = 3')\nz",                                      # 5 runs another cell
    "raise SystemExit(3)",                                                     # 6 SystemExit
    "open('outputs/model.pkl', 'wb').write(b'abc')\n%labwork upload outputs/model.pkl",  # 7 upload
    "%labwork history off",                                                    # 8 (on when it began)
    "w = 5",                                                                   # off
    "log.log('after', 2)",                                                     # off, value to run only
    "%labwork history show",
]


def test_notebook_with_history_on_and_off(own_cp, iris_dir, kernels, tmp_path):
    cp = own_cp
    nb_path = iris_dir / "analysis.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    nbformat.write(nb, nb_path)
    env = kernel_env(cp.home, iris_dir, url=cp.url, notebook=str(nb_path))
    import os
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(iris_dir)}},
                                extra_arguments=["--IPKernelApp.extensions=['labwork']"])
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)

    # the show cell printed this kernel's entries, and no cell shows anything from run history
    show = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "history off" in show and "8 entries" in show and "ZeroDivisionError" in show
    for cell in nb.cells[:4] + nb.cells[7:9] + nb.cells[11:14]:
        assert not any(o.get("output_type") == "error" for o in cell.outputs), cell.source

    [summary] = _ended_run(cp, project=str(iris_dir))
    run = cp.request("GET", f"/api/runs/{summary['id']}")
    assert run["project"] == "myIris" and run["project_dir"] == str(iris_dir)
    assert run["notebook"] == "analysis.ipynb" and run["runconfig"] == "local"
    assert run["source"] == "kernel" and run["status"] == "completed"
    assert run["kernel_id"] and run["history"] is False
    entries = run["entries"]
    assert [e["code"] for e in entries] == [NOTEBOOK_CELLS[i] for i in (3, 4, 6, 7, 8, 9, 10, 11)]
    assert [e["status"] for e in entries] == ["ok", "error", "error", "ok", "ok", "error", "ok", "ok"]
    assert [e["seq"] for e in entries] == list(range(1, 9))
    assert entries[1]["error_name"] == "ZeroDivisionError" and "division by zero" in entries[1]["error_value"]
    assert "ZeroDivisionError" in entries[1]["traceback"]
    assert entries[2]["error_name"] == "SyntaxError"
    assert entries[5]["error_name"] == "SystemExit" and entries[5]["error_value"] == "3"
    counts = [e["execution_count"] for e in entries]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert all(e["duration_ms"] is not None and e["duration_ms"] >= 0 for e in entries)
    assert run["entry_count"] == 8 and run["error_count"] == 3

    values = {v["name"]: v for v in run["values"]}
    assert set(values) == {"before", "loss", "note", "after"}
    loss = cp.request("GET", f"/api/runs/{run['id']}/values/loss")
    assert [p["value"] for p in loss["points"]] == [0.9, 0.5, 0.25]
    assert [p["step"] for p in loss["points"]] == [0, 1, 2]
    assert {p["entry_id"] for p in loss["points"]} == {entries[0]["id"]}
    by_name = {v["name"]: v for v in run["logged"]}
    assert by_name["before"]["entry_id"] is None and by_name["after"]["entry_id"] is None
    assert by_name["note"]["value"] == "hello" and by_name["note"]["kind"] == "string"

    [art] = run["artifacts"]
    assert art["path"] == "outputs/model.pkl" and art["size"] == 3 and art["entry_id"] == entries[6]["id"]
    assert cp.request("GET", f"/api/runs/{run['id']}/artifacts/outputs/model.pkl") == b"abc"
    assert not spool_records(cp.home)


def test_interrupts_empty_cells_nested_runs_and_load_ext(own_cp, iris_dir, kernels):
    cp = own_cp
    (iris_dir / "helper.py").write_text("helper_value = 41\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("inner_a = 1"), nbformat.v4.new_code_cell("inner_b = inner_a + 1")]
    nbformat.write(nb, iris_dir / "helper.ipynb")
    env = kernel_env(cp.home, iris_dir, url=cp.url, notebook=str(iris_dir / "sub" / "train.ipynb"), history=True)
    k = kernels(env, iris_dir, preload=False)

    assert k.run("%load_ext labwork").status == "ok"          # loads mid-cell: not an entry
    assert k.run("   \n").status == "ok"                      # empty: not an entry
    r = k.run_and_interrupt("import time\nprint('go', flush=True)\ntime.sleep(120)", "go")
    assert r.error and r.error["ename"] == "KeyboardInterrupt"
    # ipykernel cancels an awaiting cell on interrupt (CancelledError), at the latest when it wakes
    r = k.run_and_interrupt("import asyncio\nprint('go', flush=True)\nawait asyncio.sleep(3)", "go")
    assert r.status == "error"
    assert k.run("%run helper.py\nhelper_value + 1").status == "ok"
    assert k.run("%run helper.ipynb\ninner_b").status == "ok"
    assert k.run("get_ipython().run_cell('1/0')\n'after'").status == "ok"
    assert k.run("%labwork --help").stdout.startswith("%labwork: run history")
    bad = k.run("%labwork history sideways")
    assert bad.status == "error" and "expected on, off or show" in bad.text
    k.shutdown()

    [summary] = _ended_run(cp, notebook="train.ipynb")
    run = cp.request("GET", f"/api/runs/{summary['id']}")
    assert run["notebook"] == "sub/train.ipynb"
    entries = run["entries"]
    assert [e["code"].splitlines()[-1] for e in entries] == [
        "time.sleep(120)", "await asyncio.sleep(3)", "helper_value + 1", "inner_b", "'after'",
        "%labwork --help", "%labwork history sideways"]
    assert [e["status"] for e in entries] == ["interrupted", "interrupted", "ok", "ok", "ok", "ok", "error"]
    assert entries[0]["error_name"] == "KeyboardInterrupt"
    assert run["status"] == "failed"  # the last cell failed


def test_control_plane_stopped_mid_notebook(labwork_home, iris_dir, kernels):
    cp = ControlPlane(labwork_home).start()
    try:
        env = kernel_env(labwork_home, iris_dir, url=cp.url, notebook=str(iris_dir / "nb.ipynb"), history=True)
        k = kernels(env, iris_dir)
        k.run("from labwork import get_logger\nlog = get_logger()")
        for i in range(3):
            assert k.run(f"log.log('acc', {i})\nprint('cell {i}')").stdout == f"cell {i}\n"
        wait_for(lambda: (r := cp.runs()) and r[0]["entry_count"] == 4, what="4 entries")

        cp.stop()
        for i in range(3, 8):  # the control plane is gone: cells still finish, and show nothing of it
            r = k.run(f"log.log('acc', {i})\nprint('cell {i}')")
            assert r.status == "ok" and r.stdout == f"cell {i}\n" and r.stderr == "" and not r.outputs
        wait_for(lambda: sum(x["type"] == "entry" for x in spool_records(labwork_home)) == 5, what="5 spooled entries")

        cp.start()
        wait_for(lambda: cp.runs()[0]["entry_count"] == 9, what="replayed entries")
        assert not spool_records(labwork_home)
        k.run("print('last')")
        k.shutdown()
        [summary] = _ended_run(cp)
        run = cp.request("GET", f"/api/runs/{summary['id']}")
        assert len(run["entries"]) == run["entry_count"] == 10
        assert len({e["id"] for e in run["entries"]}) == 10
        assert [e["seq"] for e in run["entries"]] == list(range(1, 11))
        acc = cp.request("GET", f"/api/runs/{run['id']}/values/acc")
        assert [p["value"] for p in acc["points"]] == list(range(8))
        log = (labwork_home / "logs" / "history-kernel.log").read_text()
        assert "unreachable" in log and "replayed" in log
    finally:
        cp.stop()


def test_kernel_gone_while_control_plane_down(labwork_home, iris_dir, kernels):
    """A kernel that exits while the control plane is down leaves its spool; the control plane
    stores it when it starts."""
    cp = ControlPlane(labwork_home)
    env = kernel_env(labwork_home, iris_dir, url=cp.url, notebook=str(iris_dir / "offline.ipynb"), history=True)
    k = kernels(env, iris_dir)
    assert k.run("import labwork\nlabwork.get_logger().log('n', 7)").status == "ok"
    (iris_dir / "outputs" / "table.csv").write_text("a,b\n1,2\n")
    assert k.run("%labwork upload outputs/table.csv").status == "ok"
    assert k.run("1/0").status == "error"
    k.shutdown()
    assert spool_records(labwork_home)
    cp.start()
    try:
        [summary] = _ended_run(cp)
        run = cp.request("GET", f"/api/runs/{summary['id']}")
        assert [e["status"] for e in run["entries"]] == ["ok", "ok", "error"]
        assert run["status"] == "failed"
        assert [a["path"] for a in run["artifacts"]] == ["outputs/table.csv"]
        assert cp.request("GET", f"/api/runs/{run['id']}/artifacts/outputs/table.csv") == b"a,b\n1,2\n"
        assert not spool_records(labwork_home) and not list((labwork_home / "spool" / "blobs").iterdir())
    finally:
        cp.stop()


def test_uploads_refused_by_rule(own_cp, iris_dir, kernels, tmp_path):
    cp = own_cp
    (cp.home / "config.toml").write_text("[history]\nmax_upload_mb = 0.001\n")  # ~1 KB, for the kernel
    (iris_dir / "data.csv").write_text("x\n")
    (iris_dir / "outputs" / "big.bin").write_bytes(b"0" * 5000)
    (iris_dir / "outputs" / "ok.txt").write_text("fine")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (iris_dir / "outputs" / "link.txt").symlink_to(outside)
    env = kernel_env(cp.home, iris_dir, url=cp.url, notebook=str(iris_dir / "u.ipynb"), history=True)
    k = kernels(env, iris_dir)

    r = k.run("%labwork upload data.csv")
    assert r.status == "error" and "only files under the project's outputs/ folder" in r.text
    assert "Traceback" not in r.text
    r = k.run("%labwork upload outputs/../data.csv")
    assert "only files under the project's outputs/ folder" in r.text
    r = k.run("%labwork upload outputs/link.txt")
    assert "only files under the project's outputs/ folder" in r.text
    r = k.run("%labwork upload outputs/missing.bin")
    assert r.status == "error" and "no such file" in r.text
    r = k.run("%labwork upload outputs/big.bin")
    assert r.status == "error" and "over the upload size limit of 0.001 MB (history.max_upload_mb)" in r.text
    r = k.run("%labwork upload outputs")
    assert "only files under the project's outputs/ folder" in r.text
    r = k.run("%labwork upload outputs/ok.txt")
    assert r.status == "ok" and "uploading outputs/ok.txt (4 bytes)" in r.stdout
    k.shutdown()

    [summary] = _ended_run(cp)
    run = cp.request("GET", f"/api/runs/{summary['id']}")
    assert [a["path"] for a in run["artifacts"]] == ["outputs/ok.txt"]
    assert [e["status"] for e in run["entries"]] == ["error"] * 6 + ["ok"]
    assert "refused" in run["entries"][4]["error_value"]


def test_history_default_from_run_configuration_and_no_control_plane(labwork_home, iris_dir, kernels):
    """LABWORK_HISTORY=1 turns history on at start; with no control plane anywhere the cells run
    the same and everything waits in the spool."""
    env = kernel_env(labwork_home, iris_dir, url=None, notebook=str(iris_dir / "n.ipynb"), history=True)
    k = kernels(env, iris_dir)
    assert k.run("a = 1").status == "ok"
    assert "history is on" in k.run("%labwork history").stdout
    status = k.run("%labwork status").stdout
    assert "control:    none found" in status and "project:    myIris" in status
    wait_for(lambda: sum(x["type"] == "entry" for x in spool_records(labwork_home)) == 3, what="spooled entries")


def test_runs_end_with_their_kernel_or_the_reaper(labwork_home, iris_dir, kernels):
    """A kernel shut down cleanly ends its run ("the kernel shut down"); a quiet kernel that is
    alive keeps its run open (heartbeats); a SIGKILLed one is closed by the reaper: failed, "kernel
    stopped reporting"."""
    import os
    import signal
    (labwork_home / "config.toml").write_text("[history]\nstale_after_s = 4\nreap_every_s = 0.5\nheartbeat_s = 0.5\n")
    cp = ControlPlane(labwork_home).start()
    try:
        clean = kernels(kernel_env(labwork_home, iris_dir, url=cp.url, notebook=str(iris_dir / "clean.ipynb"), history=True),
                        iris_dir)
        killed = kernels(kernel_env(labwork_home, iris_dir, url=cp.url, notebook=str(iris_dir / "killed.ipynb"), history=True),
                         iris_dir)
        quiet = kernels(kernel_env(labwork_home, iris_dir, url=cp.url, notebook=str(iris_dir / "quiet.ipynb"), history=True),
                        iris_dir)
        for k in (clean, killed, quiet):
            assert k.run("x = 1").status == "ok"
        wait_for(lambda: len(cp.runs()) == 3, what="three runs")
        clean.shutdown()
        [done] = _ended_run(cp, notebook="clean.ipynb")
        assert done["status"] == "completed" and done["info"]["end_reason"] == "the kernel shut down"

        os.kill(killed.km.provisioner.process.pid, signal.SIGKILL)
        [reaped] = _ended_run(cp, notebook="killed.ipynb")
        assert reaped["status"] == "failed" and reaped["info"]["end_reason"] == "kernel stopped reporting"
        assert reaped["ended_at"] == reaped["last_seen"]
        # the quiet kernel ran nothing for longer than stale_after_s, yet its run is open
        assert cp.runs(notebook="quiet.ipynb")[0]["status"] == "running"
        assert quiet.run("y = 2").status == "ok"
    finally:
        cp.stop()
