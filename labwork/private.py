"""Files and folders only their owner may read.

Everything under `LABWORK_HOME` holds something another local user must not see: the control
plane's token, live Jupyter tokens in the database, cell code in spools and history logs. Every
part that creates a folder or a file there goes through these helpers, so the modes are set in one
place (folders 0700, files 0600) whatever the process's umask.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Any

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` (and missing parents) as 0700 folders; an existing folder is set to 0700."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if (path.stat().st_mode & 0o777) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create `path` empty if missing, in a 0700 folder, and make it 0600."""
    path = Path(path)
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def open_private(path: str | os.PathLike[str], mode: str = "a", **kwargs: Any) -> IO[Any]:
    """`open()` for a file that must be 0600 from its first byte (no window with wider modes)."""
    private_file(path)
    return open(path, mode, **kwargs)  # noqa: SIM115 - the caller closes it


def write_private(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Replace `path`'s content atomically; the new file is 0600 before any byte is written."""
    path = Path(path)
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)
    return path


# The marker `make_tree_private` leaves in a tree it has tightened, and the version of the rules it
# applied: a tree marked with this version is not walked again (raise it when the rules change).
TREE_MARK = ".private"
TREE_VERSION = "1"


def make_tree_private(root: str | os.PathLike[str]) -> bool:
    """Tighten an existing tree (an installation from before these modes): group and other lose
    every permission; the owner's bits, exec included (venvs under envs/), stay. Symlinks are left
    alone (their targets may be outside the tree).

    The whole tree is walked once, then `TREE_MARK` records `TREE_VERSION` in it. A tree already
    marked with this version is not walked again (every control-plane start calls this, and
    LABWORK_HOME grows with logs, environments and artifacts): only `root` and its direct entries
    (the token, the database, config.toml and the folders labwork makes there) are checked, since
    what labwork writes below them is private from its first byte (these helpers, umask 077).
    Returns whether the whole tree was walked."""
    root = Path(root)
    if not root.is_dir():
        return False
    private_dir(root)
    mark = root / TREE_MARK
    try:
        walked = mark.read_text(encoding="utf-8").strip() != TREE_VERSION
    except OSError:
        walked = True
    if walked:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in (*dirnames, *filenames):
                _tighten(Path(dirpath, name))
        write_private(mark, TREE_VERSION + "\n")
    else:
        with os.scandir(root) as entries:
            for entry in entries:
                _tighten(Path(entry.path))
    return walked


def _tighten(path: Path) -> None:
    try:
        st = path.lstat()
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
            os.chmod(path, st.st_mode & 0o700)
    except FileNotFoundError:
        pass  # removed meanwhile (a log pruned by a server that still runs)


_user_umask: int | None = None


def restrict_umask() -> int:
    """Make every file this process creates from now on private (umask 077), for processes that
    own `LABWORK_HOME` (the control plane); remembers the user's umask for `user_umask()`."""
    global _user_umask
    previous = os.umask(0o077)
    if _user_umask is None:
        _user_umask = previous
    return previous


def user_umask() -> int:
    """The umask to give processes started for the user (Jupyter servers, Spark drivers), whose
    files in project folders must get the user's usual modes; -1 (leave as is, `subprocess.Popen`'s
    default) when `restrict_umask()` was not called."""
    return -1 if _user_umask is None else _user_umask
