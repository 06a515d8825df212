"""Code that runs inside every session's Spark driver (an IPython kernel started by the gateway).

Start-up is one execute request, `import labwork.gateway.in_driver as __lw; __lw.boot(...)`,
whose result comes back in the reply's `user_expressions` (`__lw.reply()`). `boot` then registers a shell message type of our own,
`labwork_run_request`: each statement is one such message, run without IPython's cell machinery
and answered with its Livy output, so only the reliable shell channel is on the hot path
(`run(id, kind, code_b64)` does the same through a plain execute request, for debugging). The
statement gets Livy's semantics exactly (`statements`):
the last expression's repr, then stdout, then stderr, right-stripped; errors as ename / evalue /
traceback lines; `%json`, `%table` and `%matplot` magics; the `sql` kind; the `spark` (Scala)
kind through `scala_repl`. Every output is bounded by the gateway's
`max_output_bytes` before it leaves the driver.

A small side channel (a TCP socket on 127.0.0.1 with a per-session secret, served by a daemon
thread) lets the gateway cancel a statement's Spark jobs and read their progress while the main
thread is busy running the statement (`side_channel`). The driver's state is one `DriverState`
(`state`); `values` turns Python values into Livy's typed tables and strict JSON.
"""

from __future__ import annotations

import builtins

from labwork.gateway.in_driver.boot import boot, info, reply
from labwork.gateway.in_driver.statements import execute, run

__all__ = ["boot", "execute", "info", "reply", "run"]

builtins.__dict__.setdefault("__labwork_livy__", True)
