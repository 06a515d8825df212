"""What a gateway keeps under its state folder, so that a restarted gateway takes its drivers back.

`ids.json` (the next session and batch ids, never reused), `sessions/<id>.json` (a session's
request, app id and statements, rewritten when it changed), and each driver's own `driver.json`
(written by `Driver.save_meta`). Files are replaced atomically.
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labwork.gateway.driver import Driver

log = logging.getLogger("labwork.gateway")


@dataclass
class SavedSession:
    """A session found on disk whose driver still runs."""

    id: int
    meta: dict[str, Any]
    driver: Driver


class StateDir:
    """The gateway's state folder: ids and session metadata."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.ids: dict[str, int] = {"session": 0, "batch": 0}

    @property
    def ids_file(self) -> Path:
        return self.root / "ids.json"

    def open(self) -> None:
        """Create the folders and read the ids a previous gateway left."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "sessions").mkdir(exist_ok=True)
        try:
            self.ids.update(json.loads(self.ids_file.read_text()))
        except (OSError, ValueError):
            pass

    def next_id(self, what: str) -> int:
        n = self.ids[what]
        self.ids[what] = n + 1
        _replace(self.ids_file, json.dumps(self.ids))
        return n

    def batch_dir(self, bid: int) -> Path:
        return self.root / "batches" / str(bid)

    def session_meta_path(self, sid: int) -> Path:
        return self.root / "sessions" / f"{sid}.json"

    def save_session(self, sid: int, meta: dict[str, Any]) -> None:
        path = self.session_meta_path(sid)
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, json.dumps(meta, default=str))

    def forget_session(self, sid: int) -> None:
        self.session_meta_path(sid).unlink(missing_ok=True)

    def saved_sessions(self) -> Iterator[SavedSession]:
        """Sessions whose driver still answers to its metadata; the others' files are removed."""
        for path in sorted((self.root / "sessions").glob("*.json")):
            try:
                meta = json.loads(path.read_text())
                sid = int(meta["id"])
                self.ids["session"] = max(self.ids["session"], sid + 1)
                ddir = Path(meta["driver_dir"]) if meta.get("driver_dir") else None
                dmeta = json.loads((ddir / "driver.json").read_text()) if ddir else None
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            driver = Driver(ddir) if ddir else None
            if driver is None or dmeta is None or not driver.attach(dmeta):
                log.info("session %s: its driver is gone; not recovered", sid)
                path.unlink(missing_ok=True)
                if ddir is not None:
                    shutil.rmtree(ddir, ignore_errors=True)
                continue
            yield SavedSession(sid, meta, driver)


def _replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
