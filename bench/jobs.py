"""Benchmark: a trivial one-cell job's trigger-to-finished time against the stock `papermill`
command run directly on the same notebook and kernel, measured in the same run; and the
scheduler's fire-time lateness.

    .venv/bin/python bench/jobs.py [--rounds 5] [--accuracy] [--fires 20]

Job overhead: POST /api/projects/{id}/jobs/{name}/runs until the run has ended, against
`papermill in.ipynb out.ipynb -k labwork-local` (the kernel `"<project> local"` written as a stock
kernel spec, so papermill finds it by name). Goal: ratio <= 1.2.

Scheduler accuracy: lateness of each fire (the run's record made, minus its fire time), p50/p99.
The default is a short run on a seconds-level schedule (`*/3 * * * * *`, 10 fires); `--accuracy`
is the issue's measure: 20 per-minute fires (`* * * * *`, about 20 minutes). Goal: p99 <= 1 s.
Everything runs in a temporary LABWORK_HOME on free ports and is stopped at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from labwork.project import init_project

GOAL_OVERHEAD = 1.2
GOAL_P99_S = 1.0
FINAL = ("completed", "failed", "cancelled", "skipped", "missed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def notebook(path: Path) -> None:
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "id": "a1",
                                           "metadata": {}, "outputs": [], "source": "x = 1 + 1"}],
                                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}},
                                "nbformat": 4, "nbformat_minor": 5}))


def start_plane(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "labwork", "serve", "--port", str(port)], env=env,
                            stdout=open(home / "serve.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    limit = time.monotonic() + 90
    while time.monotonic() < limit:
        try:
            token = (home / "token").read_text().strip()
            if httpx.get(f"{url}/api/status", headers={"Authorization": f"Bearer {token}"}, timeout=2).status_code == 200:
                return proc, url, token
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError("the control plane did not start; see " + str(home / "serve.log"))


def stock_kernel_dir(root: Path, home: Path, url: str, tmp: Path) -> Path:
    """The project's `local` kernel as a stock kernel spec folder (for the papermill command)."""
    from labwork.kernels.specs import kernel_spec
    from labwork.project.files import load_project
    from labwork.settings import load_settings
    spec = kernel_spec(load_project(root), "local", load_settings(), None, url)
    spec["env"] = dict(spec["env"]) | {"LABWORK_HISTORY": "1"}  # as for jobs
    folder = tmp / "jupyter" / "kernels" / "labwork-local"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(spec))
    return tmp / "jupyter"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--accuracy", action="store_true", help="20 per-minute fires (about 20 minutes)")
    ap.add_argument("--fires", type=int, default=None, help="fires to measure (default 20 with --accuracy, else 10)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labwork-bench-jobs-"))
    home = tmp / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABWORK_")} | {"LABWORK_HOME": str(home)}
    (home / "config.toml").write_text("[jobs]\ntick_s = 0.5\n")
    proc = None
    try:
        proc, url, token = start_plane(home, env)
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        root = init_project(tmp / "proj", "benchProj").root
        notebook(root / "trivial.ipynb")
        pid = http.post("/api/projects", json={"path": str(root)}).json()["id"]
        base = f"/api/projects/{pid}/jobs"
        r = http.post(base, json={"name": "trivial", "notebook": "trivial.ipynb", "runconfig": "local"})
        r.raise_for_status()
        jupyter_path = stock_kernel_dir(root, home, url, tmp)
        pm_env = env | {"JUPYTER_PATH": str(jupyter_path), "LABWORK_PROJECT_DIR": str(root), "LABWORK_URL": url}
        direct, job = [], []
        for i in range(args.rounds + 1):  # the first round of each warms caches and is dropped
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "papermill", str(root / "trivial.ipynb"), str(tmp / f"pm-{i}.ipynb"),
                            "-k", "labwork-local", "--cwd", str(root), "--no-progress-bar"],
                           env=pm_env, check=True, capture_output=True)
            d = time.perf_counter() - t0
            t0 = time.perf_counter()
            run = http.post(f"{base}/trivial/runs", json={}).json()
            while run["status"] not in FINAL:
                time.sleep(0.02)
                run = http.get(f"{base}/runs/{run['id']}").json()
            j = time.perf_counter() - t0
            if run["status"] != "completed":
                raise RuntimeError(f"the job run failed: {run['reason']}")
            if i:
                direct.append(d)
                job.append(j)
        md, mj = statistics.median(direct), statistics.median(job)
        print(f"papermill directly   median {md:.2f} s  ({', '.join(f'{x:.2f}' for x in direct)})")
        print(f"job trigger→finished median {mj:.2f} s  ({', '.join(f'{x:.2f}' for x in job)})")
        print(f"job overhead ratio: {mj / md:.2f}x (goal <= {GOAL_OVERHEAD}x)")

        fires = args.fires or (20 if args.accuracy else 10)
        expr = "* * * * *" if args.accuracy else "*/3 * * * * *"
        r = http.post(base, json={"name": "ticks", "notebook": "trivial.ipynb", "runconfig": "local",
                                  "schedule": expr, "max_concurrent": 5})
        r.raise_for_status()
        period = 60 if args.accuracy else 3
        print(f"scheduler: {fires} fires of '{expr}' (about {fires * period / 60:.1f} min)")
        lateness: list[float] = []
        limit = time.monotonic() + fires * period + 120
        while time.monotonic() < limit:
            runs = [x for x in http.get(f"{base}/ticks/runs", params={"limit": 1000}).json() if x["scheduled_for"]]
            if len(runs) >= fires:
                lateness = sorted((datetime.fromisoformat(x["created"]) - datetime.fromisoformat(x["scheduled_for"]))
                                  .total_seconds() for x in runs[:fires])
                break
            time.sleep(1)
        http.patch(f"{base}/ticks", json={"enabled": False})
        if lateness:
            p50 = statistics.median(lateness)
            p99 = lateness[min(len(lateness) - 1, int(round(0.99 * (len(lateness) - 1))))]
            print(f"fire-time lateness p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
                  f"p99 / goal ratio: {p99 / GOAL_P99_S:.2f} (goal <= 1.00)")
        else:
            print("scheduler: not enough fires recorded")
        time.sleep(2)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
