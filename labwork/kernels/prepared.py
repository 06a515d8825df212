"""A prepared environment by the hash of its inputs: what Docker images (docker_images.py) and
remote virtual environments (remote_envs.py) share.

`experiment prepare` builds a run configuration's environment once per set of inputs: the key is a
hash of what went in (the target's fields, the requirements file, labwork's own sources, ...), so
the same inputs find the same build and a changed one makes a new build. When a build finished, a
marker `LABWORK_HOME/<folder>/<key>.json` (0600) records it; kernel specs read the marker (never
the daemon or the host) to know whether the environment is prepared.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from labwork.errors import ConfigError
from labwork.private import write_private
from labwork.project.files import Project

T = TypeVar("T")
Progress = Callable[[str], None]  # one line of a build's progress, as it happens
_SOURCE_DIGEST: str | None = None


def source_digest() -> str:
    """A digest of labwork's own Python files (what an image or a remote environment copies)."""
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        import labwork
        root = Path(labwork.__file__).parent
        h = hashlib.sha256()
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        _SOURCE_DIGEST = h.hexdigest()
    return _SOURCE_DIGEST


def target_as(project: Project, rc_name: str, kind: type[T], name: str) -> T:
    """The run configuration's compute target, which must be a `kind` (`name` in the message)."""
    target = project.target_of(project.runconfig(rc_name))
    if not isinstance(target, kind):
        raise ConfigError(f"run configuration '{rc_name}' does not run on a {name} target",
                          where=str(project.config_dir / "runconfig" / f"{rc_name}.toml"))
    return target


def input_key(*parts: str | bytes, requirements: Path | None) -> str:
    """The key of a build: a hash of `parts`, the requirements file's bytes and labwork's sources."""
    h = hashlib.sha256()
    for part in (*parts, source_digest(), requirements.read_bytes() if requirements else b""):
        h.update((part.encode() if isinstance(part, str) else part) + b"\0")
    return h.hexdigest()[:16]


def marker_path(home: Path, folder: str, key: str) -> Path:
    return home / folder / f"{key}.json"


def read_marker(marker: Path) -> dict[str, Any]:
    """What the finished build recorded; {} when it has not finished (or the file is unreadable)."""
    try:
        data = json.loads(marker.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_marker(marker: Path, **info: Any) -> None:
    """Record a finished build (with the time it finished)."""
    write_private(marker, json.dumps({**info, "built": time.time()}))
