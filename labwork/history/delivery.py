"""Getting records from the kernel to the control plane without ever costing a cell.

The cell's side only puts a dict on a queue (`Sender.put`, well under a microsecond). One daemon
thread takes what has queued every `flush_interval` seconds and sends it:

* records go as JSON batches to `POST /api/history/records`; an artifact record uploads its file
  (a copy taken at `%labwork upload` time, under `spool/blobs/`) with `PUT /api/runs/{run}/artifacts/{path}`;
* when the control plane cannot be reached (or answers 5xx/401), the unsent records are appended to
  the spool file `LABWORK_HOME/spool/<run>.jsonl`; while that file has lines, new records are
  appended behind them and the file is replayed from its first line, so the order never changes;
* every record carries an id and the store ignores ids it has seen, so a batch that arrived but
  whose answer was lost can be sent again: each record is stored exactly once.

The kernel holds an exclusive lock on `spool/<run>.lock` while it lives. A spool file whose lock
is free belongs to a kernel that is gone: the control plane replays it at start-up (and every
half minute), with `replay_orphans`.

Failures are written to `LABWORK_HOME/logs/history-kernel.log`, never to the cell.
Every file written here is 0600 in 0700 folders (`labwork.private`): spools hold cell code.
Only the standard library (and `labwork.private`, which uses nothing else) is imported here.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from labwork.private import open_private, private_dir, private_file, write_private

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

BATCH_MAX = 1000
RETRY_MIN_S = 0.5
RETRY_MAX_S = 5.0

log = logging.getLogger("labwork.history.kernel")


def setup_file_log(path: Path) -> None:
    """Send this module's log to a file only (never to the cell's stderr)."""
    if any(getattr(h, "_labwork", False) for h in log.handlers):
        return
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        private_file(path)  # cell code may be in it: 0600 in a 0700 folder
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    except OSError:
        handler = logging.NullHandler()
    handler._labwork = True  # type: ignore[attr-defined]
    log.addHandler(handler)


class SendError(Exception):
    """The control plane did not take the records (unreachable, 5xx, 401): keep them for later."""


class Refused(Exception):
    """The control plane answered 4xx about the content: sending again will not help."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class Http:
    """A tiny keep-alive HTTP client with short timeouts (http.client, no imports to pay for)."""

    def __init__(self, base_url_fn: Callable[[bool], str | None], token_fn: Callable[[], str | None],
                 timeout: float = 10.0) -> None:
        self._base_url_fn = base_url_fn
        self._token_fn = token_fn
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._base: str | None = None
        self._prefix = ""
        self._prefer_file = False
        self._token: str | None = None

    def _connection(self) -> http.client.HTTPConnection:
        base = self._base_url_fn(self._prefer_file)
        if not base:
            raise SendError("no control plane address (LABWORK_URL or LABWORK_HOME/control.json)")
        if self._conn is None or base != self._base:
            self.close()
            parts = urlsplit(base)
            cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=self._timeout)
            self._base = base
            self._prefix = parts.path.rstrip("/")
        if self._token is None:
            self._token = self._token_fn()
        return self._conn

    def request(self, method: str, path: str, body: bytes | Any, headers: dict[str, str]) -> bytes:
        try:
            conn = self._connection()
            hdrs = dict(headers)
            if self._token:
                hdrs["Authorization"] = f"Bearer {self._token}"
            conn.request(method, self._prefix + path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            self._prefer_file = True  # a restarted control plane may have a new address
            raise SendError(f"{type(exc).__name__}: {exc}") from exc
        if resp.status == 401:
            self._token = None  # read the token file again next time
            raise SendError("HTTP 401: the token was refused")
        if resp.status >= 500:
            raise SendError(f"HTTP {resp.status}: {data[:300]!r}")
        if resp.status >= 400:
            raise Refused(resp.status, data.decode("utf-8", "replace"))
        self._prefer_file = False
        return data

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None


def post_records(http: Http, records: list[dict[str, Any]]) -> None:
    """Send one batch. The control plane stores each record on its own: the ones it cannot store
    are refused alone (kept in its dead-letter file), so a refusal is logged and never sent again."""
    body = json.dumps({"records": records}, default=str).encode()
    try:
        answer = http.request("POST", "/api/history/records", body, {"Content-Type": "application/json"})
    except Refused as exc:
        log.error("control plane refused a batch of %d records (not sent again): %s", len(records), exc)
        return
    try:
        refused = json.loads(answer or b"{}").get("refused") or []
    except (ValueError, AttributeError):
        refused = []
    for r in refused:
        log.error("control plane refused record %s (%s), not sent again: %s", r.get("id"), r.get("type"),
                  r.get("error"))


def put_artifact(http: Http, record: dict[str, Any], blob_dir: Path) -> None:
    blob = blob_dir / str(record.get("blob"))
    if not blob.is_file():
        log.error("artifact %s (%s): its copy %s is gone; dropped", record.get("id"), record.get("path"), blob)
        return
    query = f"?id={quote(record['id'])}"
    if record.get("entry"):
        query += f"&entry={quote(record['entry'])}"
    path = f"/api/runs/{quote(record['run'])}/artifacts/{quote(record['path'])}{query}"
    size = blob.stat().st_size
    try:
        with open(blob, "rb") as fh:
            http.request("PUT", path, fh, {"Content-Type": "application/octet-stream",
                                           "Content-Length": str(size)})
    except Refused as exc:
        log.error("control plane refused artifact %s: %s", record.get("path"), exc)
    blob.unlink(missing_ok=True)


def send_in_order(http: Http, records: list[dict[str, Any]], blob_dir: Path) -> int:
    """Send records in order; returns how many were delivered before a SendError (re-raised with
    the count in `.sent`)."""
    sent = 0
    i = 0
    n = len(records)
    while i < n:
        if records[i].get("type") == "artifact":
            try:
                put_artifact(http, records[i], blob_dir)
            except SendError as exc:
                exc.sent = sent  # type: ignore[attr-defined]
                raise
            i += 1
            sent += 1
            continue
        j = i
        while j < n and j - i < BATCH_MAX and records[j].get("type") != "artifact":
            j += 1
        try:
            post_records(http, records[i:j])
        except SendError as exc:
            exc.sent = sent  # type: ignore[attr-defined]
            raise
        sent += j - i
        i = j
    return sent


def read_spool(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            log.error("%s line %d is not a record (a write cut short?): skipped", path, n)
    return out


def write_spool(path: Path, records: list[dict[str, Any]]) -> None:
    if not records:
        path.unlink(missing_ok=True)
        return
    write_private(path, "".join(json.dumps(rec, default=str) + "\n" for rec in records))


def append_spool(path: Path, records: list[dict[str, Any]]) -> None:
    with open_private(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(rec, default=str) + "\n" for rec in records))


class Sender:
    """The queue and its background thread, one per kernel (per run)."""

    def __init__(self, spool_dir: Path, run_id: str, base_url_fn: Callable[[bool], str | None],
                 token_fn: Callable[[], str | None], *, flush_interval: float = 0.2,
                 timeout: float = 10.0, heartbeat_s: float = 60.0,
                 beat: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self.spool_dir = spool_dir
        self.blob_dir = spool_dir / "blobs"
        self.spool_file = spool_dir / f"{run_id}.jsonl"
        self.lock_file = spool_dir / f"{run_id}.lock"
        self.flush_interval = flush_interval
        self.http = Http(base_url_fn, token_fn, timeout)
        self._q: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._retry_at = 0.0
        self._retry_delay = RETRY_MIN_S
        self.down = False
        self.sent = 0
        self.spooled = 0
        self.last_error: str | None = None
        self.heartbeat_s = heartbeat_s
        self._beat = beat
        self._last_sent = time.monotonic()

    # --- the cell's side ------------------------------------------------------------------------
    def put(self, record: dict[str, Any]) -> None:
        self._q.put(record)
        if self._thread is None:
            self._start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued is delivered or spooled (tests, `%labwork history show`)."""
        deadline = time.monotonic() + timeout
        if self._thread is None:
            return True
        while time.monotonic() < deadline:
            self._idle.clear()
            self._wake.set()
            if self._idle.wait(max(0.0, deadline - time.monotonic())) and self._q.empty():
                return True
        return False

    def pending_in_spool(self) -> int:
        return len(read_spool(self.spool_file)) if self.spool_file.exists() else 0

    def close(self, timeout: float = 3.0) -> None:
        """At exit: deliver or spool what is queued, then stop the thread."""
        if self._thread is None:
            return
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)
        self.http.close()

    # --- the thread's side ----------------------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._take_lock()
            self._thread = threading.Thread(target=self._loop, name="labwork-history-sender", daemon=True)
            self._thread.start()

    def _take_lock(self) -> None:
        if fcntl is None:
            return
        try:
            private_dir(self.spool_dir)
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._lock_fd = fd
        except OSError as exc:
            log.error("cannot lock %s: %s", self.lock_file, exc)

    def _drain(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        try:
            while True:
                batch.append(self._q.get_nowait())
        except queue.Empty:
            pass
        return batch

    def _loop(self) -> None:
        while True:
            try:
                self._cycle()
            except Exception:  # never let the thread die
                log.exception("run history sender failed; going on")
            if self._stop:
                try:
                    self._cycle(final=True)
                except Exception:
                    log.exception("run history sender failed at exit")
                self._idle.set()
                return
            if self._q.empty():
                self._idle.set()
            wait = self.flush_interval
            if self.down:
                wait = max(wait, self._retry_at - time.monotonic())
            self._wake.wait(max(0.0, wait))
            self._wake.clear()

    def _cycle(self, final: bool = False) -> None:
        batch = self._drain()
        spooled = self.spool_file.exists()
        now = time.monotonic()
        if (not batch and not spooled and not final and not self.down and self._beat is not None
                and now - self._last_sent >= self.heartbeat_s):
            beat = self._beat()
            if beat is not None:
                batch = [beat]
            self._last_sent = now
        if not batch and not spooled:
            return
        may_try = not self.down or now >= self._retry_at or final
        if final and batch and not spooled:
            # at exit the process may end while we send: make the records durable first
            append_spool(self.spool_file, batch)
            self.spooled += len(batch)
            batch = []
            spooled = True
        if spooled:
            if batch:
                append_spool(self.spool_file, batch)
                self.spooled += len(batch)
            if may_try:
                self._replay()
            return
        if not may_try:
            append_spool(self.spool_file, batch)
            self.spooled += len(batch)
            return
        try:
            self.sent += send_in_order(self.http, batch, self.blob_dir)
            self._last_sent = time.monotonic()
            self._up()
        except SendError as exc:
            done = getattr(exc, "sent", 0)
            self.sent += done
            append_spool(self.spool_file, batch[done:])
            self.spooled += len(batch) - done
            self._failed(exc)

    def _replay(self) -> None:
        records = read_spool(self.spool_file)
        try:
            self.sent += send_in_order(self.http, records, self.blob_dir)
        except SendError as exc:
            done = getattr(exc, "sent", 0)
            self.sent += done
            if done:
                write_spool(self.spool_file, records[done:])
            self._failed(exc)
            return
        self.spool_file.unlink(missing_ok=True)
        if self.down:
            log.info("control plane is back: replayed %d spooled records from %s", len(records), self.spool_file)
        self._up()

    def _up(self) -> None:
        self.down = False
        self._retry_delay = RETRY_MIN_S
        self.last_error = None

    def _failed(self, exc: Exception) -> None:
        if not self.down:
            log.warning("control plane unreachable (%s); spooling to %s", exc, self.spool_file)
        self.down = True
        self.last_error = str(exc)
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(RETRY_MAX_S, self._retry_delay * 2)


# --- replaying the spool of a kernel that is gone (used by the control plane) --------------------

def orphan_spools(spool_dir: Path) -> list[Path]:
    """Spool files whose kernel no longer holds their lock."""
    out = []
    for path in sorted(Path(spool_dir).glob("*.jsonl")):
        if _lock_free(path.with_suffix(".lock")):
            out.append(path)
    return out


def _lock_free(lock: Path) -> bool:
    if fcntl is None or not lock.exists():
        return True
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def replay_orphan(path: Path, apply_records: Callable[[list[dict[str, Any]]], None],
                  apply_artifact: Callable[[dict[str, Any], Path], None]) -> int:
    """Apply an orphaned spool file in order (records through `apply_records`, artifacts through
    `apply_artifact(record, blob_path)`), then remove it. Returns how many records it held."""
    lock = path.with_suffix(".lock")
    fd = None
    if fcntl is not None:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return 0  # a kernel took it back
    try:
        records = read_spool(path)
        blob_dir = path.parent / "blobs"
        i = 0
        while i < len(records):
            if records[i].get("type") == "artifact":
                blob = blob_dir / str(records[i].get("blob"))
                if blob.is_file():
                    apply_artifact(records[i], blob)
                    blob.unlink(missing_ok=True)
                i += 1
                continue
            j = i
            while j < len(records) and records[j].get("type") != "artifact":
                j += 1
            apply_records(records[i:j])
            i = j
        path.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
        return len(records)
    finally:
        if fd is not None:
            os.close(fd)
