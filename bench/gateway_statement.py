"""A `1+1` statement's round trip through the REST API (client polling at once) vs executing
`1+1` in the same driver directly (an execute request to its kernel over ZMQ, as a notebook
client of that driver would). Prints the gateway's own overhead at the median. Goal: <= 5 ms.

    .venv/bin/python bench/gateway_statement.py [-n 300]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from labwork.gateway.standalone import ThreadedGateway
from labwork.settings import GatewaySettings


def rest_round_trip(client: httpx.Client, sid: int) -> float:
    t0 = time.perf_counter()
    st = client.post(f"/sessions/{sid}/statements", json={"code": "1+1"}).json()
    while st["state"] != "available":
        st = client.get(f"/sessions/{sid}/statements/{st['id']}").json()
    took = time.perf_counter() - t0
    assert st["output"]["data"]["text/plain"] == "2", st
    return took


def direct(conn_file: Path, n: int) -> tuple[list[float], list[float]]:
    """Execute requests to the driver's kernel: plain `1+1`, and the gateway's own message."""
    from jupyter_client.blocking import BlockingKernelClient
    kc = BlockingKernelClient()
    kc.load_connection_file(str(conn_file))
    kc.start_channels(iopub=False, stdin=False, hb=False, control=False)
    plain, own = [], []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            mid = kc.execute("1+1", store_history=False)
            while kc.get_shell_msg(timeout=30)["parent_header"].get("msg_id") != mid:
                pass
            plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            msg = kc.session.msg("labwork_run_request", {"op": "run", "id": 10**6, "kind": "pyspark",
                                                         "code": "1+1"})
            kc.shell_channel.send(msg)
            while kc.get_shell_msg(timeout=30)["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                pass
            own.append(time.perf_counter() - t0)
    finally:
        kc.stop_channels()
    return plain, own


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, \
            ThreadedGateway(GatewaySettings(master="local[2]", driver_memory="512m"),
                            Path(tmp) / "state") as server, \
            httpx.Client(base_url=server.url, timeout=120) as client:
        sid = client.post("/sessions", json={"kind": "pyspark"}).json()["id"]
        while client.get(f"/sessions/{sid}/state").json()["state"] == "starting":
            time.sleep(0.1)
        for _ in range(20):  # warm up both paths
            rest_round_trip(client, sid)
        conn = server.gateway.sessions[sid].driver.conn_file
        rest, plain, own = [], [], []
        for _ in range(3):  # interleave so that machine load hits both alike
            rest += [rest_round_trip(client, sid) for _ in range(args.n // 3)]
            p, o = direct(conn, args.n // 3)
            plain += p
            own += o
        ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
        r, d, o = ms(rest), ms(plain), ms(own)
        print(f"REST round trip (POST + immediate GETs), median: {r:.2f} ms  (p90 "
              f"{statistics.quantiles(rest, n=10)[-1] * 1000:.2f} ms)")
        print(f"direct execute_request '1+1' to the driver:       {d:.2f} ms")
        print(f"gateway's message to the driver (no HTTP):        {o:.2f} ms")
        print(f"gateway overhead over direct execution: {r - d:.2f} ms at the median "
              f"(ratio {r / d:.2f}; goal <= 5 ms)")
        client.delete(f"/sessions/{sid}")


if __name__ == "__main__":
    main()
