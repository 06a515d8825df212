"""Session start to `idle` through the gateway vs SparkSession.builder.getOrCreate() + a first
job in a fresh Python process (same machine, same run, alternating). Goal: ratio <= 1.15.

    .venv/bin/python bench/gateway_start.py [--rounds 3] [--warm-pool]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from labwork.gateway.standalone import ThreadedGateway
from labwork.settings import GatewaySettings

BASELINE = """
import time, sys
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "512m")
         .config("spark.ui.showConsoleProgress", "false").getOrCreate())
spark.range(1).count()
print(time.time(), flush=True)
spark.stop()
"""


def baseline(tmp: Path) -> float:
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", BASELINE], capture_output=True, text=True, cwd=tmp,
                         timeout=300)
    return float(out.stdout.strip().splitlines()[-1]) - t0


def gateway_start(client: httpx.Client) -> float:
    t0 = time.time()
    sid = client.post("/sessions", json={"kind": "pyspark"}).json()["id"]
    while True:
        state = client.get(f"/sessions/{sid}/state").json()["state"]
        if state != "starting":
            break
        time.sleep(0.02)
    took = time.time() - t0
    assert state == "idle", state
    client.delete(f"/sessions/{sid}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warm-pool", action="store_true", help="also measure with warm_pool=1")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = GatewaySettings(master="local[2]", driver_memory="512m")
        base, gw = [], []
        with ThreadedGateway(settings, Path(tmp) / "state") as server, \
                httpx.Client(base_url=server.url, timeout=300) as client:
            for i in range(args.rounds):
                base.append(baseline(Path(tmp)))
                gw.append(gateway_start(client))
                print(f"round {i + 1}: getOrCreate+job {base[-1]:.2f}s  gateway idle {gw[-1]:.2f}s",
                      flush=True)
        b, g = statistics.median(base), statistics.median(gw)
        print(f"median baseline (fresh process getOrCreate + first job): {b:.2f}s")
        print(f"median gateway session start -> idle:                  {g:.2f}s")
        print(f"ratio gateway/baseline: {g / b:.3f}  (goal <= 1.15)")
        if args.warm_pool:
            pooled = GatewaySettings(master="local[2]", driver_memory="512m", warm_pool=1)
            with ThreadedGateway(pooled, Path(tmp) / "state-pool") as server, \
                    httpx.Client(base_url=server.url, timeout=300) as client:
                times = []
                for _ in range(args.rounds):
                    deadline = time.time() + 300
                    while not server.gateway.pool and time.time() < deadline:
                        time.sleep(0.1)
                    times.append(gateway_start(client))
                w = statistics.median(times)
                print(f"median warm-pool session start -> idle: {w * 1000:.1f} ms "
                      f"(ratio to baseline {w / b:.4f})")


if __name__ == "__main__":
    main()
