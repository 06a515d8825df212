"""The control plane's token file, readable without the web stack (the CLI and kernels use it)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from labwork.private import FILE_MODE, private_dir


def load_or_create_token(path: Path) -> str:
    """The token in `path`; made when missing, 0600 in a 0700 folder from its first byte. Two
    processes making it at once agree: the file appears whole (hard link) or not at all."""
    token = _read(path)
    if token:
        return token
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    try:
        if path.exists():  # empty: replace it
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        pass  # another process made it first: theirs counts
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        return ""
    if token and path.stat().st_mode & 0o077:
        os.chmod(path, FILE_MODE)
    return token
