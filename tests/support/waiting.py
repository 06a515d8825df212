"""Free ports and polling: the two waits every test folder needs."""
from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the OS picks it; tests never use fixed ports)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.2,
             what: str = "condition") -> T:
    """Poll until `predicate()` is truthy and return that value. An exception from `predicate`
    counts as "not yet" (the other side may still be coming up); after `timeout` the last value or
    exception is in the AssertionError. A wait with a generous limit, not a timed assertion."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - keep polling while the other side comes up
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"gave up waiting for {what} within {timeout:g} s; last: {last!r}")
