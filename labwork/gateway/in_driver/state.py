"""The driver's one piece of state, and the small helpers every in-driver module shares."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_OUTPUT = 50 * 1024 * 1024


@dataclass
class DriverState:
    """What the driver keeps between the gateway's messages (one per driver process)."""

    reply: str | None = None            # the encoded result `reply()` hands back once
    current: int | None = None          # the statement running now (its Spark job group)
    interrupted: bool = False           # a cancel arrived while it ran
    cfg: dict[str, Any] = field(default_factory=dict)   # the gateway's boot payload
    gateway_pid: int | None = None      # whose absence the watchdog counts (re-set on adoption)
    max_rows: int = 1000                # rows a `sql` statement returns
    max_output: int = DEFAULT_MAX_OUTPUT  # bytes an output may have (gateway.max_output_bytes)
    spark: Any = None                   # the SparkSession
    sc: Any = None                      # its SparkContext
    side_port: int | None = None
    fast_path: bool = False             # `labwork_run_request` is registered


STATE = DriverState()


def encode(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj, ensure_ascii=False, allow_nan=False,
                                       default=str).encode("utf-8")).decode("ascii")


def ipython():  # noqa: ANN201 - IPython's InteractiveShell, or None outside a kernel
    try:
        return get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        try:
            from IPython import get_ipython as g
            return g()
        except Exception:
            return None


_fallback_ns: dict[str, Any] = {}


def user_ns() -> dict:
    """The namespace statements run in: the kernel's user namespace."""
    ip = ipython()
    return ip.user_ns if ip is not None else _fallback_ns
