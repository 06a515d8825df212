"""Log-in attempts, limited per user name and per address: after `attempts` failures within
`window_s` seconds, further attempts (even right ones) are refused with 429 and Retry-After until
the oldest failure leaves the window. In memory: one control plane per store; a restart forgets."""
from __future__ import annotations

import math
import threading
import time
from collections import deque

from labwork.errors import TooManyRequests


class LoginLimiter:
    def __init__(self, attempts: int, window_s: float, clock=time.monotonic) -> None:  # noqa: ANN001
        self.attempts = attempts
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _wait(self, key: str, now: float) -> float:
        q = self._failures.get(key)
        if not q:
            return 0.0
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            self._failures.pop(key, None)
            return 0.0
        return q[0] + self.window_s - now if len(q) >= self.attempts else 0.0

    def check(self, user: str, address: str | None) -> None:
        """Raise `TooManyRequests` when this user name or address is over its limit."""
        now = self.clock()
        with self._lock:
            wait = max(self._wait("user:" + user.lower(), now), self._wait(f"addr:{address}", now))
        if wait > 0:
            raise TooManyRequests("too many failed log-ins: wait before trying again",
                                  where="login", retry_after=math.ceil(wait))

    def failed(self, user: str, address: str | None) -> None:
        now = self.clock()
        with self._lock:
            for key in ("user:" + user.lower(), f"addr:{address}"):
                q = self._failures.setdefault(key, deque())
                q.append(now)
                while len(q) > self.attempts:
                    q.popleft()
            if len(self._failures) > 100_000:  # a flood of names: forget the quietest
                for key in list(self._failures)[:50_000]:
                    self._failures.pop(key, None)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop("user:" + user.lower(), None)
