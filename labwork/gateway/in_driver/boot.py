"""Start-up inside the driver: the SparkSession, the gateway's own message type, the result.

`boot(payload)` is the one execute request the gateway sends first; its result (and `info()`'s)
comes back through `reply()`, evaluated as a user expression of the same request.
"""
from __future__ import annotations

import base64
import json
import os
import sys
import threading
import traceback
import warnings

from labwork.gateway.in_driver import scala_repl
from labwork.gateway.in_driver.side_channel import start_side_channel, watchdog
from labwork.gateway.in_driver.state import STATE, encode, ipython, user_ns
from labwork.gateway.in_driver.statements import execute


def reply() -> str:
    """Evaluated as a user expression right after `run` / `boot`: the encoded result."""
    out, STATE.reply = STATE.reply, None
    return out or ""



def boot(payload: str) -> None:
    """Create the SparkSession from the gateway's settings and publish `spark`, `sc`, `sqlContext`."""
    try:
        cfg = json.loads(base64.b64decode(payload))
        STATE.cfg = cfg
        STATE.gateway_pid = cfg.get("gateway_pid")
        STATE.max_rows = int(cfg.get("sql_max_rows", 1000))
        STATE.max_output = int(cfg.get("max_output_bytes", 50 * 1024 * 1024))
        from pyspark.sql import SparkSession
        builder = SparkSession.builder
        for key, value in cfg.get("conf", {}).items():
            builder = builder.config(key, str(value))
        spark = builder.getOrCreate()
        sc = spark.sparkContext
        ns = user_ns()
        ns["spark"], ns["sc"] = spark, sc
        try:
            from pyspark.sql import SQLContext
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ns["sqlContext"] = SQLContext(sc, spark)
        except Exception:  # pragma: no cover - removed in some future Spark
            pass
        STATE.spark, STATE.sc = spark, sc
        scala_repl.attach(spark)
        _route_warnings()
        port = start_side_channel(cfg.get("secret", ""))
        threading.Thread(target=watchdog, name="labwork-watchdog", daemon=True).start()
        _install_handler()
        STATE.reply = encode({"ok": True, **driver_info(), "side_port": port, "pid": os.getpid()})
    except BaseException as exc:  # noqa: BLE001 - reported to the gateway, which marks the session
        STATE.reply = encode({"ok": False, "error": f"{type(exc).__name__}: {exc}",
                               "traceback": traceback.format_exc()})


def _route_warnings() -> None:
    """Python warnings (pyspark 4 warns on `DataFrame.toJSON`, which both Livy clients call) go to
    the session log, never into a statement's output: clients parse that output line by line."""
    real = sys.__stderr__

    def showwarning(message, category, filename, lineno, file=None, line=None):
        try:
            real.write(warnings.formatwarning(message, category, filename, lineno, line))
            real.flush()
        except Exception:
            pass

    warnings.showwarning = showwarning


def driver_info() -> dict:
    sc = STATE.sc
    if sc is None:
        return {}
    try:
        ui = sc.uiWebUrl
    except Exception:
        ui = None
    return {"appId": sc.applicationId, "sparkUiUrl": ui, "master": sc.master,
            "sparkVersion": sc.version}


def _install_handler() -> None:
    """A shell message type of our own, `labwork_run_request`, that runs a statement without
    IPython's cell machinery (transformers, history, display hooks): the statement's hot path."""
    ip = ipython()
    kernel = getattr(ip, "kernel", None)
    if kernel is None:
        return

    def handler(stream, idents, msg):
        content = msg.get("content", {})
        op = content.get("op", "run")
        if op == "run":
            out = execute(int(content["id"]), content.get("kind", "pyspark"), content["code"])
        elif op == "complete":
            try:
                out = {"candidates": scala_repl.complete(content["code"],
                                                          int(content["cursor"]))}
            except Exception as exc:  # noqa: BLE001 - no candidates rather than an error
                out = {"candidates": [], "error": f"{type(exc).__name__}: {exc}"}
        elif op == "info":
            out = {"ok": STATE.sc is not None, **driver_info(), "pid": os.getpid(),
                   "side_port": STATE.side_port}
        else:
            out = {"status": "error", "ename": "ValueError", "evalue": f"unknown op {op!r}",
                   "traceback": []}
        kernel.session.send(stream, "labwork_run_reply", {"result": out}, parent=msg, ident=idents)

    kernel.shell_handlers["labwork_run_request"] = handler
    STATE.fast_path = True


def info() -> None:
    STATE.reply = encode({"ok": STATE.sc is not None, **driver_info(), "pid": os.getpid(),
                           "side_port": STATE.side_port})
