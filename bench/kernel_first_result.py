"""First result of `1+1` in a labwork kernel ("<project> local") against a plain python3 kernel.

Both start through jupyter_client with the same KernelSpecManager, alternating, in one run.
Goal: ratio <= 1.2 at the median.  Usage: .venv/bin/python bench/kernel_first_result.py [ROUNDS]
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import KernelManager


def first_result(ksm, name: str, *, now: bool = True) -> float:  # noqa: ANN001
    """Seconds from a kernel's start to its `1+1` result (then it is shut down; `now`: at once)."""
    t0 = time.perf_counter()
    km = KernelManager(kernel_spec_manager=ksm, kernel_name=name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        got = []
        kc.execute_interactive("1+1", timeout=60,
                               output_hook=lambda m: got.append(m["content"].get("data", {}).get("text/plain")))
        assert "2" in got, got
        return time.perf_counter() - t0
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=now)


def alternate(ksm, names: dict[str, str], rounds: int, *, now: bool = True) -> dict[str, float]:  # noqa: ANN001
    """Median first-result time of each kernel in `names` (label -> kernel name): each started once
    to warm caches, then `rounds` rounds in turn, so all see the same machine."""
    for name in names.values():
        first_result(ksm, name, now=now)
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(rounds):
        for key, name in names.items():
            times[key].append(first_result(ksm, name, now=now))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    tmp = Path(tempfile.mkdtemp(prefix="lw-bench-"))
    os.environ["LABWORK_HOME"] = str(tmp / "home")
    from labwork.project import init_project
    root = init_project(tmp / "proj", "benchProj").root
    os.environ["LABWORK_PROJECT_DIR"] = str(root)
    from labwork.kernels.specmanager import LabworkKernelSpecManager
    ksm = LabworkKernelSpecManager()
    med = alternate(ksm, {"plain": "python3", "ours": "labwork-local"}, rounds)
    mb, mo = med["plain"], med["ours"]
    print(f"plain python3 kernel:        median {mb * 1000:7.1f} ms  (n={rounds})")
    print(f"'benchProj local' kernel:    median {mo * 1000:7.1f} ms  (n={rounds})")
    print(f"ratio labwork/plain: {mo / mb:.2f}  (goal <= 1.2)")


if __name__ == "__main__":
    main()
