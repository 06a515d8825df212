"""Rendered previews kept by (path, project root, size, mtime_ns), rendered at most
MAX_CONCURRENT at a time and once per version: four readers of one 50 MB notebook cost one render."""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path

MAX_ENTRIES = 64
MAX_BYTES = 64 * 1024 * 1024
MAX_CONCURRENT = 2
# One bound for the whole process: the API and the dashboard share the CPU.
_RENDERS = threading.BoundedSemaphore(MAX_CONCURRENT)


class PreviewCache:
    """A small LRU of rendered previews; concurrent requests for one version wait for one render."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[tuple, str] = OrderedDict()
        self._pending: dict[tuple, Future] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.renders = 0  # how many times nbconvert really ran (for tests and bench/preview.py)

    def get(self, path: str | Path, root: str | Path | None = None) -> str:
        """The preview of `path` (see `render_preview`), from the cache when the file is unchanged."""
        from labwork.errors import NotFound
        from labwork.notebooks.preview import render_preview

        path = Path(path)
        try:
            st = path.stat()
        except OSError:
            raise NotFound("no such notebook", where=str(path)) from None
        key = (str(path), str(root), st.st_size, st.st_mtime_ns)
        with self._lock:
            html = self._items.get(key)
            if html is not None:
                self._items.move_to_end(key)
                return html
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = Future()
        if not owner:
            return pending.result()
        try:
            with _RENDERS:
                self.renders += 1
                html = render_preview(path, root)
        except BaseException as exc:
            with self._lock:
                self._pending.pop(key, None)
            pending.set_exception(exc)
            raise
        with self._lock:
            self._pending.pop(key, None)
            if len(html) <= self.max_bytes:
                self._items[key] = html
                self._bytes += len(html)
                while self._items and (len(self._items) > self.max_entries or self._bytes > self.max_bytes):
                    _, old = self._items.popitem(last=False)
                    self._bytes -= len(old)
        pending.set_result(html)
        return html


_SHARED = PreviewCache()


def shared_previews() -> PreviewCache:
    """The process's one preview cache (API routes and dashboard pages)."""
    return _SHARED
