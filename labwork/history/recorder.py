"""The kernel's run: the history switch, cell entries, logged values and uploads.

One `Recorder` per process (`recorder()`), created on first use. It never touches the database:
it builds small dicts and puts them on the sender's queue (see `delivery`). The cell hooks do
only that, so a cell with history on costs microseconds more than one with history off.
"""
from __future__ import annotations

import atexit
import shutil
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from labwork.history.context import KernelContext, detect
from labwork.history.delivery import Sender, log, setup_file_log
from labwork.private import open_private

MAX_LOCAL_ENTRIES = 10_000


class UploadRefused(Exception):
    """`%labwork upload` refused a file; the message names the rule."""


def _plain(value: Any) -> Any:
    """A value the store takes: number, string or list of those (numpy and friends converted)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain_item(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return _plain(value.tolist())
    if hasattr(value, "item"):
        return _plain(value.item())
    raise TypeError(f"labwork: log() takes a number, a string or a list of them, not {type(value).__name__}")


def _plain_item(value: Any) -> Any:
    v = _plain(value)
    if isinstance(v, list):
        raise TypeError("labwork: log() takes a flat list (a series), not nested lists")
    return v


class _Frame:
    __slots__ = ("info", "entry_id", "started")

    def __init__(self, info: Any, entry_id: str | None, started: float) -> None:
        self.info = info
        self.entry_id = entry_id
        self.started = started


class Recorder:
    def __init__(self, ctx: KernelContext | None = None, user_ns: dict | None = None) -> None:
        self.ctx = ctx or detect(user_ns=user_ns)
        setup_file_log(self.ctx.log_file)
        self.history = self.ctx.history_default
        self.entries: list[dict[str, Any]] = []
        self.values: list[dict[str, Any]] = []
        self.uploads: list[dict[str, Any]] = []
        self._stack: list[_Frame] = []
        self._seq = 0
        self._value_seq: dict[str, int] = {}
        self._lock = threading.Lock()
        self._run_sent = False
        self._ended = False
        flush = self.ctx.history_setting("flush_interval_s", 0.2)
        self.sender = Sender(self.ctx.spool_dir, self.ctx.run_id,
                             lambda prefer_file: self.ctx.control_url(prefer_file=prefer_file),
                             self.ctx.token, flush_interval=flush,
                             heartbeat_s=self.ctx.history_setting("heartbeat_s", 60.0), beat=self._beat)
        atexit.register(self.end)

    @property
    def run_id(self) -> str:
        return self.ctx.run_id

    # --- records --------------------------------------------------------------------------------
    def _send(self, record: dict[str, Any]) -> None:
        if not self._run_sent:
            with self._lock:
                if not self._run_sent:
                    self._run_sent = True
                    self.sender.put({"id": uuid.uuid4().hex, "type": "run", "run": self.ctx.run_id,
                                     "at": time.time(), "history": self.history, **self.ctx.run_record()})
        self.sender.put(record)

    def _beat(self) -> dict[str, Any] | None:
        """The sender's heartbeat while the run is open: it keeps the reaper away from a kernel
        that is alive but quiet."""
        if not self._run_sent or self._ended:
            return None
        return {"id": uuid.uuid4().hex, "type": "seen", "run": self.ctx.run_id, "at": time.time()}

    def set_history(self, on: bool) -> None:
        self.history = bool(on)
        self._send({"id": uuid.uuid4().hex, "type": "history", "run": self.ctx.run_id,
                    "at": time.time(), "on": self.history})

    def end(self) -> None:
        """At kernel exit: close the run and deliver (or spool) what is left."""
        if self._ended:
            return
        self._ended = True
        try:
            if self._run_sent:
                self.sender.put({"id": uuid.uuid4().hex, "type": "end", "run": self.ctx.run_id,
                                 "at": time.time(), "reason": "the kernel shut down"})
            self.sender.close(timeout=3.0)
        except Exception:
            log.exception("closing the run failed")

    # --- cell hooks (hot path) --------------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        try:
            entry_id = uuid.uuid4().hex if self.history and not self._stack else None
            self._stack.append(_Frame(info, entry_id, time.time()))
        except Exception:
            log.exception("pre_run_cell hook failed")

    def post_run_cell(self, result: Any) -> None:
        try:
            stack = self._stack
            if not stack:
                return  # an empty cell, or the cell that loaded the extension
            if result is not None and getattr(result, "info", None) is not stack[-1].info:
                return  # a cell that never announced itself (IPython skips pre_run_cell for empty cells)
            frame = stack.pop()
            if stack or frame.entry_id is None:
                return  # a cell run by another cell belongs to the outer one's entry
            self._record_entry(frame, result, time.time())
        except Exception:
            log.exception("post_run_cell hook failed")

    def _record_entry(self, frame: _Frame, result: Any, ended: float) -> None:
        status = "ok"
        err = None
        if result is None:  # an async cell cancelled by an interrupt
            status = "interrupted"
            err_name, err_value, tb = "KeyboardInterrupt", "", None
        else:
            err = result.error_before_exec or result.error_in_exec
            err_name = err_value = tb = None
        if err is not None:
            err_name = type(err).__name__
            err_value = str(err)
            if isinstance(err, KeyboardInterrupt) or err_name == "CancelledError":  # an awaiting cell
                status = "interrupted"
            elif isinstance(err, SystemExit) and err.code in (None, 0):
                status = "ok"
            else:
                status = "error"
            try:
                tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
            except Exception:
                tb = None
        self._seq += 1
        info = frame.info
        rec = {"id": frame.entry_id, "type": "entry", "run": self.ctx.run_id, "seq": self._seq,
               "kind": "cell", "execution_count": getattr(result, "execution_count", None),
               "code": getattr(info, "raw_cell", "") or "", "started": frame.started, "ended": ended,
               "status": status, "error_name": err_name, "error_value": err_value, "traceback": tb,
               "at": ended}
        entries = self.entries
        entries.append(rec)
        if len(entries) > MAX_LOCAL_ENTRIES:
            del entries[: len(entries) - MAX_LOCAL_ENTRIES]
        self._send(rec)

    # --- cells recorded by a kernel that runs them itself (labwork's sparkmagic kernels) ------------
    def begin_cell(self, code: str) -> _Frame:
        """A user cell starts; values logged until `end_cell` belong to it."""
        frame = _Frame(code, uuid.uuid4().hex if self.history else None, time.time())
        self._stack.append(frame)
        return frame

    def end_cell(self, frame: _Frame, *, status: str, error_name: str | None = None,
                 error_value: str | None = None, traceback: str | None = None,
                 execution_count: int | None = None) -> None:
        if frame in self._stack:
            self._stack.remove(frame)
        if frame.entry_id is None:
            return
        self._seq += 1
        rec = {"id": frame.entry_id, "type": "entry", "run": self.ctx.run_id, "seq": self._seq,
               "kind": "cell", "execution_count": execution_count, "code": str(frame.info),
               "started": frame.started, "ended": time.time(), "status": status,
               "error_name": error_name, "error_value": error_value, "traceback": traceback}
        rec["at"] = rec["ended"]
        self.entries.append(rec)
        if len(self.entries) > MAX_LOCAL_ENTRIES:
            del self.entries[: len(self.entries) - MAX_LOCAL_ENTRIES]
        self._send(rec)

    def current_entry(self) -> str | None:
        stack = self._stack
        return stack[0].entry_id if stack else None

    # --- values ------------------------------------------------------------------------------------
    def log_value(self, name: str, value: Any) -> None:
        if not isinstance(name, str) or not name.strip():
            raise TypeError("labwork: log() needs a name (a non-empty string)")
        if len(name) > 200:
            raise ValueError("labwork: a value's name may have at most 200 characters")
        value = _plain(value)
        with self._lock:
            seq = self._value_seq.get(name, 0)
            self._value_seq[name] = seq + 1
        rec = {"id": uuid.uuid4().hex, "type": "value", "run": self.ctx.run_id,
               "entry": self.current_entry(), "name": name, "seq": seq, "value": value,
               "at": time.time()}
        self.values.append(rec)
        self._send(rec)

    # --- uploads ------------------------------------------------------------------------------------
    def check_upload(self, given: str) -> tuple[Path, str, int]:
        """The file to upload, its path as stored (`outputs/...`) and its size, or UploadRefused
        naming the rule: under outputs/, exists, a file, within the size limit."""
        outputs = self.ctx.outputs_dir.resolve()
        raw = Path(given).expanduser()
        candidates = [raw] if raw.is_absolute() else [Path.cwd() / raw]
        base = self.ctx.project_copy or self.ctx.project_dir
        if not raw.is_absolute() and base is not None:
            candidates.append(base / raw)
        chosen = next((c for c in candidates if c.exists()), candidates[0])
        resolved = chosen.resolve()
        if not resolved.is_relative_to(outputs) or resolved == outputs:
            raise UploadRefused(
                f"refused '{given}': only files under the project's outputs/ folder ({outputs}) can be "
                f"uploaded")
        if not resolved.exists():
            raise UploadRefused(f"refused '{given}': no such file ({resolved})")
        if not resolved.is_file():
            raise UploadRefused(f"refused '{given}': not a file (upload the files in it one by one)")
        size = resolved.stat().st_size
        limit_mb = self.ctx.max_upload_mb()
        if size > int(limit_mb * 1024 * 1024):
            raise UploadRefused(
                f"refused '{given}': {size:,} bytes is over the upload size limit of "
                f"{limit_mb:g} MB (history.max_upload_mb)")
        return resolved, "outputs/" + resolved.relative_to(outputs).as_posix(), size

    def upload(self, given: str) -> dict[str, Any]:
        file, stored_path, size = self.check_upload(given)
        artifact_id = uuid.uuid4().hex
        blob_dir = self.ctx.spool_dir / "blobs"
        with open(file, "rb") as src, open_private(blob_dir / artifact_id, "wb") as dst:
            shutil.copyfileobj(src, dst)  # the file as it is now, whatever happens next
        rec = {"id": artifact_id, "type": "artifact", "run": self.ctx.run_id,
               "entry": self.current_entry(), "path": stored_path, "blob": artifact_id, "size": size,
               "at": time.time()}
        self.uploads.append(rec)
        self._send(rec)
        return rec


_recorder: Recorder | None = None
_recorder_lock = threading.Lock()


def recorder(user_ns: dict | None = None) -> Recorder:
    global _recorder
    if _recorder is None:
        with _recorder_lock:
            if _recorder is None:
                _recorder = Recorder(user_ns=user_ns)
    return _recorder


def kernel_recorder(kernel_id: str) -> Recorder:
    """The process's recorder for a kernel whose id is known before ipykernel starts (labwork's
    sparkmagic launcher): `recorder()` and `%labwork` return this one."""
    global _recorder
    with _recorder_lock:
        if _recorder is None:
            ctx = detect()
            ctx.kernel_id = kernel_id
            ctx.kernel_id_known = True
            _recorder = Recorder(ctx)
    return _recorder
