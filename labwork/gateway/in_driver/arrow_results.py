"""Results as Arrow, inside the driver: `%%sql -o` / `%%spark -o` out, `%%send_to_spark` in.

A statement of the gateway's own kind `arrow` (its code a JSON request, queued like any other
statement so order, cancel and progress hold) stages one result: Spark's own Arrow record batches
(what `toArrow()` / `toPandas()` collect, no pandas made in the driver), with Spark's schema and
the session's time zone and struct mode in the Arrow schema's metadata so the kernel converts them
exactly as `toPandas()` would (`arrow_convert.py`). The gateway then streams it out through the
side channel (`stream_out`), once; staging another result drops it. Uploads come the other way
(`stream_in`) and are bound to a name by a later `arrow` statement.
Bounded: the bytes are counted as the batches arrive and collecting stops past the session's
`max_result_bytes`; where Spark's size estimate is reliable (`arrow_collect.reliable_estimate`)
and already larger — or larger than half the driver's heap — it is refused before collecting.
"""
from __future__ import annotations

import json
import re
import secrets
import threading
from contextlib import contextmanager
from typing import Any

from labwork.gateway.in_driver import arrow_collect
from labwork.gateway.in_driver.state import STATE, user_ns

ARROW_CONF = "spark.sql.execution.arrow.pyspark.enabled"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_lock = threading.Lock()
_staged: dict[str, Any] = {}      # statement id -> pyarrow.Table (at most one)
_uploads: dict[str, Any] = {}     # upload token -> pyarrow.Table (until bound)


class ArrowRequestError(Exception):
    """A request the driver cannot serve; its message says what was wrong."""

    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(evalue)
        self.ename, self.evalue = ename, evalue


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"  # pragma: no cover


@contextmanager
def _arrow_on(spark):  # noqa: ANN001 - a SparkSession
    """Spark's Arrow path for this call only; the user's own setting is put back."""
    before = spark.conf.get(ARROW_CONF, None)
    spark.conf.set(ARROW_CONF, "true")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(ARROW_CONF)
        else:
            spark.conf.set(ARROW_CONF, before)


def run(statement_id: int, code: str) -> dict:
    """One `arrow` statement: its Livy output (JSON: what was staged, or bound)."""
    try:
        req = json.loads(code)
        if not isinstance(req, dict):
            raise ValueError("expected a JSON object")
    except ValueError as exc:
        raise ArrowRequestError("ValueError", f"an arrow request must be a JSON object: {exc}") from exc
    op = req.get("op")
    if op == "collect":
        summary = collect(str(statement_id), req)
    elif op == "bind":
        summary = bind(req)
    else:
        raise ArrowRequestError("ValueError", f"unknown arrow op {op!r} (expected collect or bind)")
    return {"application/json": summary}


def _frame(req: dict):  # noqa: ANN202 - a pyspark DataFrame
    from pyspark.sql import DataFrame
    spark = STATE.spark
    source, text = req.get("source"), req.get("code")
    if not isinstance(text, str) or not text.strip():
        raise ArrowRequestError("ValueError", "code: expected the SQL query or the variable's name")
    if source == "sql":
        return spark.sql(text)
    if source != "variable":
        raise ArrowRequestError("ValueError", f"source: expected 'sql' or 'variable', got {source!r}")
    name = text.strip()
    if req.get("kind") == "spark":
        from labwork.gateway.in_driver import scala_repl
        try:
            value = scala_repl._scala_value(name)
        except scala_repl.ScalaError as exc:
            raise ArrowRequestError(exc.ename, exc.evalue) from exc
        dataset = STATE.sc._jvm.java.lang.Class.forName("org.apache.spark.sql.Dataset")
        if not dataset.isInstance(value):
            raise ArrowRequestError("TypeError", f"{name} is not a Spark DataFrame: only "
                                                 "DataFrames can be sent with -o")
        return DataFrame(value, spark)
    ns = user_ns()
    if name not in ns:
        raise ArrowRequestError("NameError", f"name '{name}' is not defined")
    value = ns[name]
    if not isinstance(value, DataFrame):
        raise ArrowRequestError("TypeError", f"{name} is a {type(value).__name__}, not a Spark "
                                             "DataFrame: only DataFrames can be sent with -o")
    return value


def _heap_cap() -> int | None:
    """Half the driver JVM's heap: a collect larger than that would take the driver down."""
    try:
        return int(STATE.sc._jvm.java.lang.Runtime.getRuntime().maxMemory()) // 2
    except Exception:  # noqa: BLE001 - no JVM answer, no extra bound
        return None


_HOW_TO_SAMPLE = ("bring back fewer rows with -n N, or a sample with -m sample -r 0.1, or "
                  "aggregate in Spark first")


def _too_large(size: int, cap: int, how: str) -> ArrowRequestError:
    return ArrowRequestError(
        "ResultTooLarge",
        f"the result is {how}{_size(size)}, more than this session's limit of {_size(cap)} "
        f"(gateway.max_result_bytes); {_HOW_TO_SAMPLE}")


def _refuse_on_estimate(df, cap: int) -> None:  # noqa: ANN001 - a pyspark DataFrame
    """Refuse before collecting where Spark's estimate is reliable and already too large."""
    estimate = arrow_collect.reliable_estimate(df)
    if estimate is None:
        return
    if estimate > cap:
        raise _too_large(estimate, cap, "estimated by Spark at ")
    heap = _heap_cap()
    if heap is not None and estimate > heap:
        raise ArrowRequestError(
            "ResultTooLarge",
            f"the result is estimated by Spark at {_size(estimate)}, more than half this driver's "
            f"memory ({_size(heap)} of {_size(2 * heap)}: collecting it would run the driver out "
            "of memory); bring back fewer rows with -n N, or a sample with -m sample -r 0.1, or "
            "start the session with more driverMemory (%%configure -f)")


def collect(statement_id: str, req: dict) -> dict:
    """Stage `req`'s result (Spark's own Arrow batches, no pandas) for streaming; the summary
    says how many rows of how many."""
    import pyarrow as pa
    df = _frame(req)
    maxrows = int(req.get("maxrows", 2500))
    method = req.get("samplemethod") or "take"
    cap = int(req.get("max_bytes") or 2 * 1024 ** 3)
    fraction = float(req.get("samplefraction") or 0.1)
    if method not in ("take", "sample"):
        raise ArrowRequestError("ValueError", f"samplemethod: expected take or sample, got {method!r}")
    picked = df.sample(False, fraction) if method == "sample" else df
    limited = picked.limit(maxrows + 1) if maxrows >= 0 else picked
    _refuse_on_estimate(limited, cap)
    with _lock:
        _staged.clear()  # one staged result per session: the last one not fetched goes
    meta = arrow_collect.spark_meta(limited)
    try:
        batches = arrow_collect.collect_batches(limited, cap, statement_id)
    except arrow_collect.TooLarge as exc:
        raise ArrowRequestError(
            "ResultTooLarge",
            f"the result is more than this session's limit of {_size(cap)} "
            f"(gateway.max_result_bytes): collecting stopped at {_size(exc.seen)} after "
            f"{exc.rows:,} rows; {_HOW_TO_SAMPLE}") from None
    schema = batches[0].schema if batches else arrow_collect.empty_schema(limited, meta)
    table = pa.Table.from_batches(batches, schema=schema)
    table = table.replace_schema_metadata({arrow_collect.META_KEY: json.dumps(meta)})
    truncated = maxrows >= 0 and table.num_rows > maxrows
    if truncated:
        table = table.slice(0, maxrows)
    total = df.count() if truncated or method == "sample" else None
    with _lock:
        _staged[statement_id] = table
    rows = table.num_rows
    return {"rows": rows, "total": total if total is not None else rows,
            "truncated": bool(truncated), "sampled": method == "sample",
            "columns": [str(f["name"]) for f in meta["schema"]["fields"]], "bytes": table.nbytes,
            "statement": int(statement_id)}


def bind(req: dict) -> dict:
    """Make an uploaded frame a Spark DataFrame named `req["name"]` (Python, or the Scala REPL)."""
    name, token = req.get("name"), req.get("upload")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ArrowRequestError("ValueError", f"name: {name!r} is not a valid variable name")
    with _lock:
        table = _uploads.pop(str(token), None)
    if table is None:
        raise ArrowRequestError("ValueError", f"upload {token!r} is unknown (sent already, or never)")
    spark = STATE.spark
    pdf = table.to_pandas()
    with _arrow_on(spark):
        sdf = spark.createDataFrame(pdf) if len(pdf.columns) else spark.createDataFrame([], "")
    if req.get("kind") == "spark":
        from labwork.gateway.in_driver import scala_repl
        view = f"labwork_upload_{secrets.token_hex(6)}"
        sdf.createOrReplaceTempView(view)
        scala_repl.run(f'val {name} = spark.table("{view}")')
    else:
        user_ns()[name] = sdf
    return {"name": name, "rows": len(pdf), "columns": [str(c) for c in pdf.columns]}


def stream_out(conn_file, statement_id: str) -> None:  # noqa: ANN001 - the socket's file
    """Side channel: write a header line, then the staged result as an Arrow IPC stream."""
    import pyarrow as pa
    with _lock:
        table = _staged.get(statement_id)
    if table is None:
        conn_file.write(json.dumps({"error": f"statement {statement_id} has no Arrow result "
                                             "(not an arrow statement, or fetched already)"}).encode() + b"\n")
        return
    conn_file.write(json.dumps({"ok": True, "rows": table.num_rows, "bytes": table.nbytes}).encode() + b"\n")
    with pa.ipc.new_stream(conn_file, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=64 * 1024):
            writer.write_batch(batch)
    conn_file.flush()
    with _lock:
        if _staged.get(statement_id) is table:
            del _staged[statement_id]


def stream_in(conn_file, cap: int) -> None:  # noqa: ANN001
    """Side channel: read one Arrow IPC stream (at most `cap` bytes of data), keep it, answer
    a line with its upload token."""
    import pyarrow as pa
    try:
        reader = pa.ipc.open_stream(conn_file)
        batches, size = [], 0
        for batch in reader:
            size += batch.nbytes
            if size > cap:
                while conn_file.read(64 * 1024):  # the rest is discarded: the answer gets through
                    pass
                raise ArrowRequestError("ResultTooLarge", f"the upload is more than {_size(cap)}, "
                                        "this session's limit (gateway.max_result_bytes)")
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except ArrowRequestError as exc:
        conn_file.write(json.dumps({"error": exc.evalue, "ename": exc.ename}).encode() + b"\n")
        return
    except Exception as exc:  # noqa: BLE001 - a broken stream is the uploader's error
        conn_file.write(json.dumps({"error": f"not a readable Arrow IPC stream: {exc}",
                                    "ename": "ValueError"}).encode() + b"\n")
        return
    token = secrets.token_hex(8)
    with _lock:
        _uploads.clear()  # one pending upload per session
        _uploads[token] = table
    conn_file.write(json.dumps({"ok": True, "upload": token, "rows": table.num_rows}).encode() + b"\n")
