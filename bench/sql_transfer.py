"""`%%sql -o df -n -1` in labwork's sparkmagic kernel through the gateway: the Arrow path against
stock sparkmagic's JSON path (the same kernel, session and driver: sparkmagic's own `sql` magic is
called from the kernel), and against `toPandas()` inside the driver (Spark's Arrow path) as the
floor, for 10^4, 10^5 and 10^6 rows × 3 and 30 mixed-type columns. Prints ratios, the Arrow
bytes moved, loopback throughput measured in the same run, and the peak RSS of gateway (this
process), driver (Python + JVM) and kernel, and where the Arrow path's time goes (driver, the
stream through the gateway, the kernel's decode). Goal: >= 10x stock at 10^6 rows; <= 2x of the floor
plus the bytes' loopback transfer time.

    .venv/bin/python bench/sql_transfer.py [--reps 1] [--rows 10000,100000,1000000] [--no-stock-above 1000000]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labwork.gateway.standalone import ThreadedGateway  # noqa: E402
from labwork.settings import GatewaySettings  # noqa: E402
from tests.support.sparkmagic import SparkmagicKernel  # noqa: E402


def query(rows: int, wide: bool) -> str:
    if not wide:
        return (f"SELECT id, CAST(id AS DOUBLE) * 0.5 AS x, CONCAT('s', CAST(id AS STRING)) AS s "
                f"FROM range({rows})")
    cols = [f"id + {i} AS i{i}" for i in range(10)]
    cols += [f"CAST(id AS DOUBLE) / {i + 1} AS d{i}" for i in range(10)]
    cols += [f"CONCAT('text ', CAST(id * {i + 1} AS STRING)) AS s{i}" for i in range(5)]
    cols += [f"TIMESTAMP'2024-01-01 00:00:00' + MAKE_INTERVAL(0, 0, 0, 0, 0, 0, id + {i}) AS t{i}"
             for i in range(3)]
    cols += [f"id % {i + 2} = 0 AS b{i}" for i in range(2)]
    return f"SELECT {', '.join(cols)} FROM range({rows})"


def timed_in_kernel(kernel: SparkmagicKernel, q: str, stock: bool) -> float:
    """Seconds of one `%%sql -o df -n -1 -q`, timed inside the kernel."""
    marker = f"T-{uuid.uuid4().hex}:"
    call = ("get_ipython().magics_manager.registry['KernelMagics'].sql" if stock
            else "(lambda l, c: get_ipython().run_cell_magic('sql', l, c))")
    cell = kernel(f"%%local\nimport time as _t\n_t0 = _t.perf_counter()\n"
                  f"{call}('-o df -n -1 -q', {q!r})\n"
                  f"_took = _t.perf_counter() - _t0\nassert len(df) > 0\n"
                  f"print({marker!r}, _took, len(df))", timeout=3600)
    assert cell.ok and marker in cell.text, cell.text
    return float(cell.text.split(marker, 1)[1].split()[0])


def profile_in_kernel(kernel: SparkmagicKernel, q: str) -> dict:
    """Seconds of each step of the Arrow path (driver, stream through the gateway, kernel
    decode), from arrow_magics.fetch's own timings."""
    marker = f"P-{uuid.uuid4().hex}:"
    cell = kernel("%%local\nimport json as _j\nfrom labwork.gateway import arrow_magics as _am\n"
                  "_km = get_ipython().magics_manager.registry['KernelMagics']\n"
                  "_s = _km.spark_controller.get_session_by_name_or_default(None)\n_tm = {}\n"
                  f"_am.fetch(_s, {{'source': 'sql', 'code': {q!r}, 'maxrows': -1}}, _tm)\n"
                  f"print({marker!r}, _j.dumps(_tm))", timeout=3600)
    assert cell.ok and marker in cell.text, cell.text
    return json.loads(cell.text.split(marker, 1)[1].strip().splitlines()[0])


def floor_in_driver(kernel: SparkmagicKernel, q: str) -> tuple[float, int]:
    """Seconds of `toPandas()` with Arrow in the driver, and the Arrow bytes of the frame."""
    marker = f"F-{uuid.uuid4().hex}:"
    cell = kernel("import time as _t, pyarrow as _pa\n"
                  "spark.conf.set('spark.sql.execution.arrow.pyspark.enabled', 'true')\n"
                  f"_t0 = _t.perf_counter()\n_pdf = spark.sql({q!r}).toPandas()\n"
                  "_took = _t.perf_counter() - _t0\n"
                  f"print({marker!r}, _took, _pa.Table.from_pandas(_pdf, preserve_index=False).nbytes)\n"
                  "del _pdf", timeout=3600)
    assert cell.ok and marker in cell.text, cell.text
    took, size = cell.text.split(marker, 1)[1].split()[:2]
    return float(took), int(size)


def loopback_bytes_per_s(total: int = 512 * 1024 * 1024) -> float:
    """Throughput of one TCP connection on 127.0.0.1, measured now."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    chunk = b"x" * (1 << 20)

    def sink() -> None:
        conn, _ = srv.accept()
        with conn:
            while conn.recv(1 << 20):
                pass

    t = threading.Thread(target=sink, daemon=True)
    t.start()
    with socket.create_connection(srv.getsockname()) as c:
        t0 = time.perf_counter()
        for _ in range(total // len(chunk)):
            c.sendall(chunk)
    t.join()
    took = time.perf_counter() - t0
    srv.close()
    return total / took


def peak_rss_mib(pid: int, children: bool = True) -> float:
    """VmHWM of a process (and its children: the driver's JVM), MiB."""
    import psutil
    total = 0
    try:
        procs = [psutil.Process(pid)] + (psutil.Process(pid).children(recursive=True)
                                         if children else [])
    except psutil.Error:
        return 0.0
    for p in procs:
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=1, help="repetitions per case (best is kept)")
    ap.add_argument("--rows", default="10000,100000,1000000")
    ap.add_argument("--columns", default="3,30", help="3 and/or 30")
    ap.add_argument("--no-stock-above", type=int, default=10 ** 5,
                    help="skip stock sparkmagic above this many rows × 30 columns: at 10^6 its "
                         "JSON text (~600 MB) runs for many minutes and is over the gateway's "
                         "max_output_bytes anyway")
    args = ap.parse_args()
    sizes = [int(x) for x in args.rows.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        settings = GatewaySettings(master="local[2]", driver_memory="2g", executor_memory="1g")
        with ThreadedGateway(settings, Path(tmp) / "state") as gw:
            kernel = SparkmagicKernel(Path(tmp) / "kernel", gw.url, driver_memory="2g")
            try:
                first = kernel("spark.range(1).count()")
                assert first.ok, first.text
                loop = loopback_bytes_per_s()
                print(f"loopback: {loop / 1e9:.2f} GB/s")
                print(f"{'case':>18} {'ours s':>8} {'stock s':>8} {'floor s':>8} {'MiB':>7} "
                      f"{'stock/ours':>10} {'ours/(floor+xfer)':>17}   ours' steps")
                results = []
                for wide in [c == "30" for c in args.columns.split(",")]:
                    for rows in sizes:
                        q = query(rows, wide)
                        # warm up at the same size: the first pull of a size pays the JVM's and
                        # Arrow's warm-up, which stock (timed after ours and the floor) would not
                        timed_in_kernel(kernel, q, stock=False)
                        ours = min(timed_in_kernel(kernel, q, False) for _ in range(args.reps))
                        floor, size = min(floor_in_driver(kernel, q) for _ in range(args.reps))
                        skip = wide and rows > args.no_stock_above
                        stock = None if skip else min(timed_in_kernel(kernel, q, True)
                                                      for _ in range(args.reps))
                        xfer = size / loop
                        steps = profile_in_kernel(kernel, q)
                        row = {"rows": rows, "columns": 30 if wide else 3, "ours_s": ours,
                               "stock_s": stock, "floor_s": floor, "bytes": size,
                               "stock_over_ours": stock / ours if stock else None,
                               "ours_over_floor_plus_transfer": ours / (floor + xfer),
                               "steps_s": steps}
                        results.append(row)
                        name = f"{rows:>8,} x {row['columns']:>2}"
                        print(f"{name:>18} {ours:8.2f} {stock if stock else float('nan'):8.2f} "
                              f"{floor:8.2f} {size / 2**20:7.1f} "
                              f"{(stock / ours) if stock else float('nan'):10.1f}x "
                              f"{row['ours_over_floor_plus_transfer']:16.2f}x   "
                              + " ".join(f"{k} {v:.2f}s" for k, v in steps.items()), flush=True)
                driver = next(iter(gw.gateway.sessions.values())).driver
                rss = {"gateway (this process, also the benchmark)": peak_rss_mib(os.getpid(), children=False),
                       "driver (Python + JVM)": peak_rss_mib(driver.pid),
                       "kernel": peak_rss_mib(kernel.km.provisioner.process.pid)}
                for who, mib in rss.items():
                    print(f"peak RSS {who}: {mib:,.0f} MiB")
                print(json.dumps({"results": results, "peak_rss_mib": rss}))
            except BaseException:
                for s in gw.gateway.sessions.values():
                    if s.driver is not None:
                        print("driver log tail:\n" + "\n".join(
                            s.driver.err_path.read_text(errors="replace").splitlines()[-400:]))
                raise
            finally:
                kernel.stop()


if __name__ == "__main__":
    main()
