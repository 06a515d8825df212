"""The driver's side channel: cancel and progress while the main thread runs a statement.

A TCP socket on 127.0.0.1 with a per-session secret, served by daemon threads; and the watchdog
that ends an orphaned driver once its gateway has been gone for longer than the orphan grace.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time

from labwork.gateway.in_driver.state import STATE


def start_side_channel(secret: str) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    port = sock.getsockname()[1]
    STATE.side_port = port

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=_handle, args=(conn, secret), daemon=True).start()

    threading.Thread(target=serve, name="labwork-side-channel", daemon=True).start()
    return port


def _handle(conn: socket.socket, secret: str) -> None:
    with conn:
        f = conn.makefile("rwb")
        for line in f:
            try:
                req = json.loads(line)
            except ValueError:
                return
            if req.get("secret") != secret:
                return
            if req.get("op") in ("arrow_out", "arrow_in"):  # binary: the connection is theirs
                _arrow(req, f)
                return
            try:
                res = _side(req)
            except Exception as exc:  # noqa: BLE001
                res = {"error": f"{type(exc).__name__}: {exc}"}
            f.write(json.dumps(res).encode() + b"\n")
            f.flush()


def _arrow(req: dict, f) -> None:  # noqa: ANN001 - the connection's file
    from labwork.gateway.in_driver import arrow_results
    try:
        if req["op"] == "arrow_out":
            arrow_results.stream_out(f, str(req.get("statement")))
        else:
            arrow_results.stream_in(f, int(req.get("max_bytes") or 0))
        f.flush()
    except OSError:  # the gateway went away mid-stream
        pass


def _side(req: dict) -> dict:
    op = req.get("op")
    sc = STATE.sc
    if op == "ping":
        return {"ok": True, "current": STATE.current}
    if op == "cancel":
        if sc is not None:
            sc.cancelJobGroup(str(req["group"]))
        return {"ok": True}
    if op == "progress":
        return {"progress": _progress(str(req["group"]))}
    if op == "adopt":
        STATE.gateway_pid = req.get("pid")
        return {"ok": True}
    return {"error": f"unknown op {op!r}"}


def _progress(group: str) -> float:
    sc = STATE.sc
    if sc is None:
        return 0.0
    tracker = sc.statusTracker()
    total = done = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        if job is None:
            continue
        for stage_id in job.stageIds:
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                total += stage.numTasks
                done += stage.numCompletedTasks
    return round(done / total, 4) if total else 0.0


def watchdog() -> None:
    """End this driver when its gateway has been gone for longer than the orphan grace."""
    grace = float(STATE.cfg.get("orphan_grace_s", 3600))
    gone_since = None
    while True:
        time.sleep(5)
        pid = STATE.gateway_pid
        if not pid:
            continue
        try:
            os.kill(int(pid), 0)
            gone_since = None
        except ProcessLookupError:
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since > grace:
                os._exit(0)
        except OSError:
            gone_since = None
