"""Reading a driver's or a batch's log files back, the way Livy shows spark-submit's output."""
from __future__ import annotations

import os
from pathlib import Path


def tail_lines(path: Path, n: int, max_bytes: int = 64_000) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]
    return lines[-n:] if n >= 0 else lines


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
    err = tail_lines(err_path, n)
    if len(err) >= n:
        return err[-n:]
    return (["stdout: ", *tail_lines(out_path, n), "\nstderr: ", *err])[-n:]


