"""Benchmark: `labwork notebook start --no-browser` (control plane already up) until the server answers
`/api/status`, against plain `jupyter lab --no-browser` measured in the same run.

    .venv/bin/python bench/notebook_start.py [--rounds 9]

Prints the median of each, and the ratio (goal: <= 1.1) two ways: of the medians, and the median
of each round's own ratio (labwork's start over the plain start of the same round, run back to back,
so a burst of load on this shared machine weighs on both sides of one ratio; the goal is checked on
this paired one, which varies far less between runs). Then a breakdown of labwork's time: the
same start asked of the control plane's API directly (no CLI process) separates the CLI's own
cost (labwork - API) from the control plane's (API - jupyter). Everything runs in a temporary
LABWORK_HOME on free ports, and everything started is stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from labwork.project import init_project

GOAL = 1.1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_status(base: str, token: str, proc: subprocess.Popen | None, timeout: float = 120) -> None:
    limit = time.monotonic() + timeout
    with httpx.Client(timeout=2, headers={"Authorization": f"token {token}"}) as http:
        while time.monotonic() < limit:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"jupyter exited with {proc.returncode}")
            try:
                if http.get(f"{base}/api/status").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"{base} did not answer within {timeout} s")


def start_control_plane(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "labwork", "serve", "--port", "0"], env=env,
                            stdout=open(home / "serve.log", "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    limit = time.monotonic() + 60
    while time.monotonic() < limit:
        try:
            info = json.loads((home / "control.json").read_text())
            token = (home / "token").read_text().strip()
            if info["pid"] == proc.pid and httpx.get(f"{info['url']}/api/status", timeout=2,
                                                     headers={"Authorization": f"Bearer {token}"}).status_code == 200:
                return proc, info["url"], token
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("control plane did not start: " + (home / "serve.log").read_text()[-2000:])


CLI_CPU: list[float] = []  # CPU seconds (user + system) of each counted `labwork notebook start`


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def labwork_round(project: Path, env: dict[str, str], api: httpx.Client) -> float:
    t0 = time.perf_counter()
    cpu0 = _children_cpu()  # only the CLI process is reaped meanwhile
    out = subprocess.run([sys.executable, "-m", "labwork", "notebook", "start", str(project), "--no-browser",
                          "--json"], env=env, capture_output=True, text=True)
    CLI_CPU.append(_children_cpu() - cpu0)
    if out.returncode:
        raise RuntimeError(f"labwork notebook start exited {out.returncode}: {out.stderr.strip()}")
    server = json.loads(out.stdout)
    wait_status(server["base_url"], server["token"], None)
    elapsed = time.perf_counter() - t0
    api.delete(f"/api/projects/{server['project']['id']}/server").raise_for_status()
    return elapsed


def api_round(project_id: int, api: httpx.Client) -> float:
    """The same start without the CLI: one POST to the control plane, then until the server answers."""
    t0 = time.perf_counter()
    r = api.post(f"/api/projects/{project_id}/server", json={"kind": "python", "ui": "lab"})
    r.raise_for_status()
    server = r.json()
    wait_status(server["base_url"], server["token"], None)
    elapsed = time.perf_counter() - t0
    api.delete(f"/api/projects/{project_id}/server").raise_for_status()
    return elapsed


def jupyter_round(project: Path, env: dict[str, str]) -> float:
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
    port = free_port()
    token = secrets.token_urlsafe(32)
    t0 = time.perf_counter()
    proc = subprocess.Popen([jupyter, "lab", "--no-browser", "--allow-root", f"--ServerApp.port={port}",
                             "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.root_dir={project}"],
                            env=dict(env, JUPYTER_TOKEN=token), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_status(f"http://127.0.0.1:{port}", token, proc)
        return time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labwork-bench-"))
    home = tmp / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABWORK_", "DISPLAY", "WAYLAND"))}
    env["LABWORK_HOME"] = str(home)
    project = init_project(tmp / "proj", "benchProj").root
    cp, url, token = start_control_plane(home, env)
    times: dict[str, list[float]] = {"labwork": [], "api": [], "jupyter": []}
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=180) as api:
            r = api.post("/api/projects", json={"path": str(project)})
            r.raise_for_status()
            project_id = r.json()["id"]
            labwork_round(project, env, api)  # warm-up (imports, disk caches), not counted
            jupyter_round(project, env)
            CLI_CPU.clear()
            runs = {"labwork": lambda: labwork_round(project, env, api),
                    "api": lambda: api_round(project_id, api),
                    "jupyter": lambda: jupyter_round(project, env)}
            for i in range(args.rounds):
                order = list(runs) if i % 2 == 0 else list(reversed(runs))
                for name in order:
                    t = runs[name]()
                    times[name].append(t)
                    print(f"round {i + 1}: {name:8s} {t:6.2f} s", flush=True)
    finally:
        cp.terminate()
        try:
            cp.wait(30)
        except subprocess.TimeoutExpired:
            cp.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    lab, via_api, base = (statistics.median(times[k]) for k in ("labwork", "api", "jupyter"))
    paired = statistics.median(a / b for a, b in zip(times["labwork"], times["jupyter"]))
    print(f"labwork notebook start (median of {args.rounds}): {lab:.2f} s")
    print(f"control-plane API only (median of {args.rounds}): {via_api:.2f} s  (ratio {via_api / base:.2f})")
    print(f"jupyter lab            (median of {args.rounds}): {base:.2f} s")
    print(f"breakdown: CLI {lab - via_api:+.2f} s, control plane {via_api - base:+.2f} s, "
          f"Jupyter {base:.2f} s")
    print(f"CLI process CPU (user+system, median): {statistics.median(CLI_CPU):.2f} s "
          f"({statistics.median(CLI_CPU) / base:.3f} of the jupyter lab start)")
    print(f"ratio of the medians {lab / base:.2f}; median of the rounds' own ratios {paired:.2f} "
          f"(goal <= {GOAL}) {'OK' if paired <= GOAL else 'OVER GOAL'}")


if __name__ == "__main__":
    main()
