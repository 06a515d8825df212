"""Reading a driver's or a batch's log files back, the way Livy shows spark-submit's output."""
from __future__ import annotations

from pathlib import Path

from labwork.processes import tail


def all_lines(path: Path) -> list[str]:
    try:
        return path.read_bytes().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def livy_log(out_path: Path, err_path: Path, n: int | None = None) -> list[str]:
    """A driver's output as Livy shows spark-submit's: "stdout: ", its stdout lines, "\nstderr: ",
    its stderr lines; the last `n` of them (None: all)."""
    if n is None:
        return ["stdout: ", *all_lines(out_path), "\nstderr: ", *all_lines(err_path)]
    err = tail(err_path, n)
    if len(err) >= n:
        return err[-n:]
    return (["stdout: ", *tail(out_path, n), "\nstderr: ", *err])[-n:]


