"""What run history costs a cell: `.venv/bin/python bench/history_overhead.py [--cells 1000]`.

One real ipykernel with the labwork extension, a real control plane. Trivial cells (`x = 1`) run
with history off and on in alternating blocks of 50 in the same kernel, first with the control
plane up, then with it stopped (records go to the spool). Reported: the median round trip per cell
as the notebook client sees it (execute request -> reply), the added milliseconds and the ratio
against history off measured in the same run; and the hooks' own cost measured inside the kernel.

Targets (issue 4): added time per cell <= 1 ms at the median with the control plane up, <= 2 ms
with it down.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

SERVE = textwrap.dedent("""
    import sys, uvicorn
    from labwork.server.app import create_app
    from labwork.settings import load_settings
    home, port = sys.argv[1], int(sys.argv[2])
    settings = load_settings(flags={"home": home, "port": port})
    app = create_app(settings, url=f"http://127.0.0.1:{port}")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
""")

HOOK_COST = textwrap.dedent("""
    import time, statistics
    from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult
    from labwork.history.recorder import recorder
    _rec = recorder()
    _was = _rec.history
    _rec.history = {on}
    _samples = []
    for _ in range({n}):
        _info = ExecutionInfo("x = 1", True, False, True, None)
        _res = ExecutionResult(_info)
        _res.execution_count = 1
        _t = time.perf_counter()
        _rec.pre_run_cell(_info)
        _rec.post_run_cell(_res)
        _samples.append(time.perf_counter() - _t)
    _rec.history = _was
    print(statistics.median(_samples) * 1e6, statistics.quantiles(_samples, n=100)[98] * 1e6)
""")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControlPlane:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABWORK_")}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVE, str(self.home), str(self.port)], env=env,
                                     stdout=open(self.home / "bench-cp.log", "ab"), stderr=subprocess.STDOUT)
        for _ in range(600):
            try:
                token = (self.home / "token").read_text().strip()
                if httpx.get(f"{self.url}/api/status", headers={"Authorization": f"Bearer {token}"},
                             timeout=2).status_code == 200:
                    return
            except (OSError, httpx.HTTPError):
                pass
            time.sleep(0.1)
        raise SystemExit("control plane did not start; see " + str(self.home / "bench-cp.log"))

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None

    def entry_count(self) -> int:
        token = (self.home / "token").read_text().strip()
        runs = httpx.get(f"{self.url}/api/runs", headers={"Authorization": f"Bearer {token}"}).json()["runs"]
        return sum(r["entry_count"] for r in runs)


def run_cell(kc, code: str) -> float:
    t = time.perf_counter()
    reply = kc.execute(code, reply=True, timeout=60)
    elapsed = time.perf_counter() - t
    if reply["content"]["status"] != "ok":
        raise SystemExit(f"cell failed: {code!r}: {reply['content']}")
    return elapsed


def silent(kc, code: str) -> str:
    """Run code without it being a cell (silent=True: no pre/post_run_cell, no entry)."""
    out = []
    kc.execute_interactive(code, silent=True, store_history=False, timeout=120,
                           output_hook=lambda m: out.append(m["content"].get("text", ""))
                           if m["msg_type"] == "stream" else None)
    return "".join(out)


def measure(kc, cells: int, block: int = 50) -> tuple[list[float], list[float]]:
    off: list[float] = []
    on: list[float] = []
    for b in range(2 * cells // block):
        history = b % 2 == 1
        run_cell(kc, f"%labwork history {'on' if history else 'off'}")
        for _ in range(block):
            (on if history else off).append(run_cell(kc, "x = 1"))
    run_cell(kc, "%labwork history off")
    return off, on


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=1000)
    args = ap.parse_args()
    from jupyter_client import KernelManager

    with tempfile.TemporaryDirectory(prefix="labwork-bench-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        project = Path(tmp) / "proj"
        (project / "outputs").mkdir(parents=True)
        (project / "labwork.toml").write_text('[project]\nname = "bench"\n')
        cp = ControlPlane(home)
        cp.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABWORK_")}
        env.update(LABWORK_HOME=str(home), LABWORK_URL=cp.url, LABWORK_PROJECT_DIR=str(project),
                   LABWORK_RUNCONFIG="local", JPY_SESSION_NAME=str(project / "bench.ipynb"))
        km = KernelManager(kernel_name="python3", connection_file=str(Path(tmp) / "kernel-bench.json"))
        km.start_kernel(env=env, cwd=str(project), extra_arguments=["--IPKernelApp.extensions=['labwork']"])
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        try:
            for _ in range(200):  # warm up
                run_cell(kc, "x = 1")
            results = {}
            up_off, up_on = measure(kc, args.cells)
            hook_up = [float(x) for x in silent(kc, HOOK_COST.format(on=True, n=10000)).split()]
            hook_off = [float(x) for x in silent(kc, HOOK_COST.format(on=False, n=10000)).split()]
            silent(kc, "from labwork.history.recorder import recorder; recorder().sender.flush(60)")
            delivered = cp.entry_count()
            cp.stop()
            down_off, down_on = measure(kc, args.cells)
            hook_down = [float(x) for x in silent(kc, HOOK_COST.format(on=True, n=10000)).split()]
            silent(kc, "from labwork.history.recorder import recorder; recorder().sender.flush(60)")
            spooled = sum(1 for f in (home / "spool").glob("*.jsonl")
                          for line in f.read_text().splitlines() if '"type": "entry"' in line)
            results["up"] = (up_off, up_on)
            results["down"] = (down_off, down_on)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=False)
            cp.stop()

    print(f"run history overhead: {args.cells} trivial cells with history on vs off, same kernel, "
          f"alternating blocks of 50 (round trip per cell as the client sees it)")
    print(f"{'control plane':<15}{'off median ms':>15}{'on median ms':>15}{'added ms':>11}{'ratio':>8}"
          f"{'off p90':>9}{'on p90':>9}")
    summary = {}
    for label, (off, on) in results.items():
        m_off, m_on = statistics.median(off), statistics.median(on)
        p_off = statistics.quantiles(off, n=10)[8]
        p_on = statistics.quantiles(on, n=10)[8]
        added = (m_on - m_off) * 1000
        summary[label] = {"off_ms": m_off * 1000, "on_ms": m_on * 1000, "added_ms": added,
                          "ratio": m_on / m_off}
        print(f"{label:<15}{m_off * 1000:>15.3f}{m_on * 1000:>15.3f}{added:>11.3f}{m_on / m_off:>8.3f}"
              f"{p_off * 1000:>9.3f}{p_on * 1000:>9.3f}")
    print(f"hooks inside the kernel (pre+post_run_cell, 10000 calls): history on, plane up "
          f"{hook_up[0]:.1f} us median / {hook_up[1]:.1f} us p99; plane down {hook_down[0]:.1f} us / "
          f"{hook_down[1]:.1f} us; history off {hook_off[0]:.1f} us / {hook_off[1]:.1f} us")
    print(f"entries stored while up: {delivered}; entries spooled while down: {spooled}")
    ok_up = summary["up"]["added_ms"] <= 1.0
    ok_down = summary["down"]["added_ms"] <= 2.0
    print(f"targets: up <= 1 ms: {'met' if ok_up else 'MISSED'}; down <= 2 ms: {'met' if ok_down else 'MISSED'}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
