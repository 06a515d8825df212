"""Webhook notifications of a job run's end: a JSON POST, retried with back-off on a thread of its
own, so a slow or failing receiver never blocks or fails the run. The body holds no secret."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from labwork.errors import ConfigError

log = logging.getLogger("labwork.jobs")


def check_url(url: str | None, where: str = "webhook") -> str | None:
    """An http(s) URL with a host, or None for no webhook."""
    if url is None or not url.strip():
        return None
    url = url.strip()
    parts = urlsplit(url)
    if "\x00" in url or any(c.isspace() for c in url) or len(url) > 2000:
        raise ConfigError("the webhook URL has spaces, a NUL byte or more than 2000 characters", where=where)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"webhook {url!r} is not an http:// or https:// URL with a host", where=where,
                          hint="e.g. https://hooks.example.com/labwork")
    return url


def send(url: str, body: dict[str, Any], *, attempts: int, timeout: float,
         on_done: Any = None) -> threading.Thread:
    """POST `body` to `url` in a daemon thread: up to `attempts` tries, 1 s, 2 s, 4 s … apart."""

    def deliver() -> None:
        outcome = "failed"
        for attempt in range(attempts):
            try:
                r = httpx.post(url, json=body, timeout=timeout, follow_redirects=False)
                if r.status_code < 300:
                    outcome = f"delivered (HTTP {r.status_code}, attempt {attempt + 1})"
                    break
                problem = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            log.warning("webhook for job run %s: %s (attempt %d of %d)", body.get("run"), problem,
                        attempt + 1, attempts)
            outcome = f"failed after {attempt + 1} attempts: {problem}"
            if attempt + 1 < attempts:
                time.sleep(min(30.0, 2.0 ** attempt))
        if on_done is not None:
            try:
                on_done(outcome)
            except Exception:  # noqa: BLE001 - bookkeeping only
                log.exception("recording the webhook's outcome")

    thread = threading.Thread(target=deliver, name=f"labwork-webhook-{body.get('run')}", daemon=True)
    thread.start()
    return thread
