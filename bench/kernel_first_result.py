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


def first_result(ksm, name: str) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    km = KernelManager(kernel_spec_manager=ksm, kernel_name=name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        got = []
        kc.execute_interactive("1+1", timeout=60,
                               output_hook=lambda m: got.append(m["content"].get("data", {}).get("text/plain")))
        assert "2" in got, got
        return time.perf_counter() - t0
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    tmp = Path(tempfile.mkdtemp(prefix="lw-bench-"))
    os.environ["LABWORK_HOME"] = str(tmp / "home")
    from labwork.project import init_project
    root = init_project(tmp / "proj", "benchProj").root
    os.environ["LABWORK_PROJECT_DIR"] = str(root)
    from labwork.kernels.specmanager import LabworkKernelSpecManager
    ksm = LabworkKernelSpecManager()
    first_result(ksm, "python3")  # warm the OS caches for both
    first_result(ksm, "labwork-local")
    base, ours = [], []
    for _ in range(rounds):
        base.append(first_result(ksm, "python3"))
        ours.append(first_result(ksm, "labwork-local"))
    mb, mo = statistics.median(base), statistics.median(ours)
    print(f"plain python3 kernel:        median {mb * 1000:7.1f} ms  (n={rounds})")
    print(f"'benchProj local' kernel:    median {mo * 1000:7.1f} ms  (n={rounds})")
    print(f"ratio labwork/plain: {mo / mb:.2f}  (goal <= 1.2)")


if __name__ == "__main__":
    main()
