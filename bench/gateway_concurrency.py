"""8 sessions x 50 statements at once (one client thread per session): errors, throughput, and
memory per idle session (the driver's Python kernel + its JVM, RSS).

    .venv/bin/python bench/gateway_concurrency.py [--sessions 8] [--statements 50]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from labwork.gateway.standalone import ThreadedGateway
from labwork.settings import GatewaySettings


def worker(url: str, sid: int, n: int, results: list, errors: list, spark_every: int) -> None:
    with httpx.Client(base_url=url, timeout=300) as c:
        for i in range(n):
            spark_job = spark_every and i % spark_every == spark_every - 1
            code = "spark.range(1000).count()" if spark_job else f"x{i} = sum(range({i} * 100))\nx{i}"
            t0 = time.perf_counter()
            try:
                st = c.post(f"/sessions/{sid}/statements", json={"code": code}).json()
                while st["state"] in ("waiting", "running"):
                    time.sleep(0.005)
                    st = c.get(f"/sessions/{sid}/statements/{st['id']}").json()
                if st["state"] != "available" or st["output"]["status"] != "ok":
                    errors.append(st)
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
            results.append(time.perf_counter() - t0)


def rss_tree(pid: int) -> int:
    p = psutil.Process(pid)
    return sum(x.memory_info().rss for x in [p, *p.children(recursive=True)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--statements", type=int, default=50)
    ap.add_argument("--spark-every", type=int, default=10,
                    help="every Nth statement runs a Spark job (0: pure Python statements)")
    args = ap.parse_args()
    settings = GatewaySettings(master="local[2]", driver_memory="512m", max_sessions=args.sessions)
    with tempfile.TemporaryDirectory() as tmp, ThreadedGateway(settings, Path(tmp) / "state") as server, \
            httpx.Client(base_url=server.url, timeout=300) as c:
        t0 = time.time()
        ids = [c.post("/sessions", json={"kind": "pyspark"}).json()["id"] for _ in range(args.sessions)]
        for sid in ids:
            while c.get(f"/sessions/{sid}/state").json()["state"] == "starting":
                time.sleep(0.2)
        states = [c.get(f"/sessions/{sid}/state").json()["state"] for sid in ids]
        print(f"{args.sessions} sessions started in {time.time() - t0:.1f}s; states: {set(states)}")
        time.sleep(2)
        rss = [rss_tree(server.gateway.sessions[sid].driver.pid) for sid in ids]
        results: list[float] = []
        errors: list = []
        threads = [threading.Thread(target=worker, args=(server.url, sid, args.statements, results, errors,
                                                    args.spark_every))
                   for sid in ids]
        t1 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t1
        total = len(results)
        print(f"statements: {total} (a Spark job every {args.spark_every or 'never'}), "
              f"errors: {len(errors)}")
        for e in errors[:3]:
            print("  error:", e)
        print(f"wall {wall:.2f}s, throughput {total / wall:.1f} statements/s, "
              f"median latency {statistics.median(results) * 1000:.1f} ms, "
              f"p90 {statistics.quantiles(results, n=10)[-1] * 1000:.1f} ms")
        print(f"RSS per idle session (kernel + JVM): median {statistics.median(rss) / 2**20:.0f} MiB, "
              f"max {max(rss) / 2**20:.0f} MiB")
        gw_rss = psutil.Process().memory_info().rss
        print(f"gateway process RSS (this process, incl. benchmark clients): {gw_rss / 2**20:.0f} MiB")
        for sid in ids:
            c.delete(f"/sessions/{sid}")


if __name__ == "__main__":
    main()
