"""What labwork's JupyterLab extension costs: page load to the first usable notebook (its cell
editor shown, its kernel idle) with and without the extension, in the same run, and the lifecycle
requests one tab makes per minute.

    .venv/bin/python bench/lab_extension.py [--rounds 5] [--minutes 1]

Two JupyterLab servers with the same command line (labwork's `jupyter_command`), one without
labwork's extension arguments, serve the same folder; each round opens a fresh browser context
on each (alternating which goes first) and times `goto` to usable. Goal: ratio ≤ 1.05; polling at
most 6 requests per tab per minute (once every 10 s).
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support: the browser and JupyterLab helpers the tests use

from labwork.notebooks.launch import jupyter_command, lab_extension_args  # noqa: E402
from labwork.processes import free_port  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.jupyterlab import USABLE, lab_url  # noqa: E402


def start_lab(root: Path, with_extension: bool, log: Path) -> tuple[subprocess.Popen, dict]:
    port, token = free_port(), secrets.token_urlsafe(16)
    cmd = [a for a in jupyter_command("lab", port, root) if "kernel_spec_manager_class" not in a]
    if not with_extension:
        cmd = [a for a in cmd if a not in lab_extension_args()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABWORK_", "JUPYTER_TOKEN"))}
    env["JUPYTER_TOKEN"] = token
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    server = {"base_url": f"http://127.0.0.1:{port}", "token": token}
    until = time.monotonic() + 120
    while time.monotonic() < until:
        try:
            if httpx.get(f"{server['base_url']}/api/status", headers={"Authorization": f"token {token}"}).is_success:
                return proc, server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"JupyterLab did not start; see {log}")


def load_once(browser, server: dict, path: str) -> float:  # noqa: ANN001
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(lab_url(server, path))
    page.wait_for_selector(USABLE, timeout=180_000)
    took = time.perf_counter() - t0
    # shut the notebook's kernel down, so each round starts one as the first did
    with httpx.Client(base_url=server["base_url"], headers={"Authorization": f"token {server['token']}"}) as c:
        ctx.close()
        for s in c.get("/api/sessions").json():
            c.delete(f"/api/sessions/{s['id']}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--minutes", type=float, default=1.0, help="how long to count one tab's lifecycle requests")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        root = Path(tmp) / "work"
        root.mkdir()
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, root / "bench.ipynb")
        procs = []
        try:
            p_with, with_ext = start_lab(root, True, Path(tmp) / "with.log")
            procs.append(p_with)
            p_without, without = start_lab(root, False, Path(tmp) / "without.log")
            procs.append(p_without)
            times: dict[str, list[float]] = {"with": [], "without": []}
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                load_once(browser, with_ext, "bench.ipynb")  # warm-up: caches, first kernel start
                load_once(browser, without, "bench.ipynb")
                for i in range(args.rounds):
                    order = [("with", with_ext), ("without", without)]
                    for name, server in order if i % 2 == 0 else order[::-1]:
                        times[name].append(load_once(browser, server, "bench.ipynb"))
                # one tab's lifecycle requests over --minutes
                ctx = browser.new_context()
                page = ctx.new_page()
                seen: list[float] = []
                page.on("request", lambda r: seen.append(time.monotonic()) if "/labwork/lifecycle" in r.url else None)
                page.goto(lab_url(with_ext, "bench.ipynb"))
                page.wait_for_selector(USABLE, timeout=180_000)
                start = time.monotonic()
                page.wait_for_timeout(args.minutes * 60_000)
                counted = sum(1 for t in seen if t >= start)
                ctx.close()
                browser.close()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
    w, wo = statistics.median(times["with"]), statistics.median(times["without"])
    print(f"JupyterLab load to a usable notebook, median of {args.rounds} (same run):")
    print(f"  without labwork's extension  {wo:7.3f} s   (baseline)")
    print(f"  with labwork's extension     {w:7.3f} s   ratio {w / wo:.3f}x  (goal <= 1.05x)")
    per_min = counted / args.minutes
    print(f"lifecycle requests of one tab: {per_min:.1f} per minute (goal <= 6, once every 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
