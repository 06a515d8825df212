"""Dashboard pages under load: each page's median latency and its ratio to `/api/status`.

    .venv/bin/python bench/dashboard.py [--runs 1000] [--entries 50] [--clients 8] [--requests 15]

A temporary LABWORK_HOME gets a project with notebooks and a store holding `runs` runs of
`entries` entries each (50,000 entries by default) plus logged values, written through the history
tables; then a real control plane (`labwork serve`) answers `clients` concurrent clients (threads
with httpx, loopback). Each page is measured in its own phase (all clients asking for it at once),
between two phases of the baseline `/api/status`; its ratio is to the median of those two, so a
change in the machine's load during the run cancels out. Goal: no page above 10x.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def fill_store(home: Path, project_root: Path, project_name: str, runs: int, entries: int) -> list[str]:
    """Runs, entries and values inserted in bulk through the history tables."""
    from sqlalchemy import insert

    from labwork.history.tables import EntryRow, RunRow, ValueRow
    from labwork.store.db import Store

    store = Store(f"sqlite:///{home / 'labwork.db'}")
    rnd = random.Random(7)
    now = datetime.now(UTC)
    statuses = ["completed"] * 7 + ["failed", "interrupted", "running"]
    run_ids: list[str] = []
    with store.engine.begin() as conn:
        run_rows, entry_rows, value_rows = [], [], []
        for i in range(runs):
            rid = uuid.uuid4().hex
            run_ids.append(rid)
            started = now - timedelta(minutes=30 * i + rnd.randint(0, 20))
            status = rnd.choice(statuses)
            errors = 0
            for e in range(entries):
                failed = status == "failed" and e == entries - 1
                errors += failed
                t = started + timedelta(seconds=2 * e)
                entry_rows.append({"id": f"{rid}-e{e}", "run_id": rid, "seq": e + 1, "kind": "cell",
                                   "execution_count": e + 1, "code": f"x = step({e})\nprint(x)\n" * 3,
                                   "started_at": t, "ended_at": t + timedelta(milliseconds=300),
                                   "duration_ms": 300.0, "status": "error" if failed else "ok",
                                   "error_name": "ValueError" if failed else None,
                                   "error_value": "bad input" if failed else None,
                                   "traceback": "Traceback...\nValueError: bad input" if failed else None})
            for v in range(20):
                value_rows.append({"id": f"{rid}-v{v}", "run_id": rid, "entry_id": f"{rid}-e{min(v, entries - 1)}",
                                   "name": "loss", "seq": v, "kind": "number", "value": 1.0 / (v + 1) + rnd.random() * 0.05,
                                   "logged_at": started + timedelta(seconds=v)})
            value_rows.append({"id": f"{rid}-acc", "run_id": rid, "entry_id": None, "name": "accuracy", "seq": 0,
                               "kind": "number", "value": rnd.random(), "logged_at": started})
            ended = None if status == "running" else started + timedelta(seconds=2 * entries)
            run_rows.append({"id": rid, "source": "kernel", "project": project_name, "project_dir": str(project_root),
                             "notebook": f"nb{i % 20}.ipynb", "runconfig": "local", "kernel_id": None, "host": "bench",
                             "pid": 1, "status": status, "history": True, "started_at": started, "ended_at": ended,
                             "last_seen": ended or started, "entry_count": entries, "error_count": errors, "info": {}})
            if len(entry_rows) >= 10_000:
                conn.execute(insert(RunRow), run_rows)
                conn.execute(insert(EntryRow), entry_rows)
                conn.execute(insert(ValueRow), value_rows)
                run_rows, entry_rows, value_rows = [], [], []
        if run_rows:
            conn.execute(insert(RunRow), run_rows)
        if entry_rows:
            conn.execute(insert(EntryRow), entry_rows)
        if value_rows:
            conn.execute(insert(ValueRow), value_rows)
    store.dispose()
    return run_ids


def write_notebook(path: Path) -> None:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Bench notebook")]
    for i in range(30):
        nb.cells.append(nbformat.v4.new_code_cell(f"print({i})", execution_count=i + 1, outputs=[
            nbformat.v4.new_output("stream", name="stdout", text=f"{i}\n")]))
    nbformat.write(nb, path)


def start_control_plane(home: Path) -> tuple[subprocess.Popen, str, str]:
    env = dict(os.environ, LABWORK_HOME=str(home))
    log = open(home / "bench-serve.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "labwork", "serve", "--port", "0"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=str(REPO))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("control plane exited:\n" + (home / "bench-serve.log").read_text()[-2000:])
        try:
            info = json.loads((home / "control.json").read_text())
            token = (home / "token").read_text().strip()
            if httpx.get(info["url"] + "/api/status", headers={"Authorization": f"Bearer {token}"},
                         timeout=2).status_code == 200:
                return proc, info["url"], token
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("control plane did not start")


def measure(url: str, token: str, path: str, clients: int, requests: int) -> list[float]:
    """All clients ask for `path` `requests` times each, at once; the latencies in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)
    failures: list[str] = []

    def client() -> None:
        mine = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            http.get(path)  # connection set up outside the timing
            barrier.wait()
            for _ in range(requests):
                t0 = time.perf_counter()
                r = http.get(path)
                mine.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    failures.append(f"{path}: HTTP {r.status_code} {r.text[:200]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(failures[0])
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--entries", type=int, default=50)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=15, help="requests per client and phase")
    args = ap.parse_args()

    from labwork.project import init_project

    with tempfile.TemporaryDirectory(prefix="labwork-bench-dash-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        project = init_project(Path(tmp) / "benchproj", "benchProj")
        for i in range(20):
            write_notebook(project.root / f"nb{i}.ipynb")
        t0 = time.perf_counter()
        from labwork.store.db import Store
        Store(f"sqlite:///{home / 'labwork.db'}").dispose()  # migrate first
        run_ids = fill_store(home, project.root, project.name, args.runs, args.entries)
        print(f"store: {args.runs} runs, {args.runs * args.entries} entries, {args.runs * 21} values "
              f"written in {time.perf_counter() - t0:.1f}s")
        proc, url, token = start_control_plane(home)
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
                pid = http.post("/api/projects", json={"path": str(project.root)}).json()["id"]
                # let the environment check (pip check, in the background) finish before timing
                http.get(f"/projects/{pid}/jupyter")
                for _ in range(300):
                    if "env-checking" not in http.get(f"/projects/{pid}/environment/alert").text:
                        break
                    time.sleep(0.2)
            some = run_ids[len(run_ids) // 2]
            pages = [
                ("projects", "/"),
                ("jupyter", f"/projects/{pid}/jupyter"),
                ("jupyter state (polled)", f"/projects/{pid}/jupyter/state.json"),
                ("notebooks", f"/projects/{pid}/notebooks"),
                ("notebooks + preview pane", f"/projects/{pid}/notebooks?path=nb3.ipynb"),
                ("preview (cached)", f"/projects/{pid}/notebooks/preview?path=nb3.ipynb"),
                ("compute", f"/projects/{pid}/compute"),
                ("runs, page 1", "/runs"),
                ("runs, page 15", "/runs?page=15"),
                ("project runs filtered", f"/projects/{pid}/runs?notebook=nb3.ipynb&status=completed"),
                ("runs by date", f"/runs?since={(datetime.now(UTC) - timedelta(days=5)).date()}"),
                ("run (50 entries, chart)", f"/runs/{some}"),
                ("compare 3 runs", "/runs/compare?" + "&".join(f"run={r}" for r in run_ids[10:13])),
                ("spark", "/spark"),
            ]
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
                for _, path in pages:  # warm-up: templates compiled, previews cached
                    for _ in range(2):
                        r = http.get(path)
                        assert r.status_code == 200, (path, r.status_code, r.text[:300])
            # status, page 1, status, page 2, ..., status: each page against the baseline phases on
            # either side of it, so a change in the machine's own load during the run cancels out
            status = "/api/status"
            phases = [measure(url, token, status, args.clients, args.requests)]
            results = []
            for name, path in pages:
                lat = measure(url, token, path, args.clients, args.requests)
                phases.append(measure(url, token, status, args.clients, args.requests))
                results.append((name, lat, statistics.median(phases[-2] + phases[-1])))
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        medians = [statistics.median(ph) for ph in phases]
        print(f"{args.clients} concurrent clients, {args.requests} requests each per phase; /api/status median "
              f"{statistics.median([x for ph in phases for x in ph]):.2f} ms over the run "
              f"(its phases {min(medians):.1f}..{max(medians):.1f} ms)")
        print(f"{'page':32} {'median ms':>10} {'p90 ms':>9} {'status ms':>10} {'ratio':>7}")
        worst = 0.0
        for name, lat, base in results:
            med = statistics.median(lat)
            p90 = sorted(lat)[int(len(lat) * 0.9) - 1]
            ratio = med / base
            worst = max(worst, ratio)
            flag = "" if ratio <= 10 else "  (above 10x)"
            print(f"{name:32} {med:10.2f} {p90:9.2f} {base:10.2f} {ratio:6.1f}x{flag}")
        print(f"worst ratio: {worst:.1f}x (goal: at most 10x)")


if __name__ == "__main__":
    main()
