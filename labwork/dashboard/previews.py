"""Notebook previews (nbconvert, a fraction of a second each) cached by file, size and mtime."""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

MAX_ENTRIES = 64
MAX_BYTES = 64 * 1024 * 1024


@dataclass
class PreviewCache:
    _items: OrderedDict = field(default_factory=OrderedDict)
    _bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, path: Path) -> str:
        from labwork.notebooks.preview import render_preview

        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            html = self._items.get(key)
            if html is not None:
                self._items.move_to_end(key)
                return html
        html = render_preview(path)
        with self._lock:
            self._items[key] = html
            self._bytes += len(html)
            while self._items and (len(self._items) > MAX_ENTRIES or self._bytes > MAX_BYTES):
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)
        return html
