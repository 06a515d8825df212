"""How a kernel ended, kept where every surface can read it.

A kernel's provisioner (local, Docker, SSH) records one `KernelEnd` when its process or container
ends: exit code, signal, whether memory ran out and the limit in force. The records go to one
JSON-lines file per Jupyter server (its path in `LABWORK_KERNEL_ENDS`, set by the server manager),
so the Jupyter server's labwork extension (JupyterLab's "why it died"), the control plane (the
dashboard's running kernels, `labwork notebook status`, the server log) and run history (the run's
end reason) all word the same end the same way, through `KernelEnd.describe()`.

Only the standard library: this module loads inside Jupyter servers and kernels.
"""
from __future__ import annotations

import json
import os
import signal as signals
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from labwork import envvars


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def size_text(n: int) -> str:
    """268435456 -> '256 MiB' (binary units, as limits are given)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:g} {unit}" if unit == "B" else f"{value:.3g} {unit}".replace(".0 ", " ")
        value /= 1024
    return f"{n} B"


@dataclass(frozen=True)
class KernelEnd:
    """One kernel's end. `exit_code` is the process's (or container's) exit status when it exited,
    `signal` the signal that killed it, `oom` True when the memory limit (`memory_limit`, bytes)
    was hit; `where` says where it ran ("local", "container 1a2b3c", "host vm")."""

    kernel_id: str
    run_config: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    oom: bool = False
    memory_limit: int | None = None
    where: str = "local"
    at: str = field(default_factory=_now)

    def describe(self) -> str:
        """The one wording of this end: "out of memory (limit 256 MiB)", "killed by signal 9
        (SIGKILL)", "exited with code 1", "exited normally"."""
        if self.oom:
            limit = f" (limit {size_text(self.memory_limit)})" if self.memory_limit else ""
            return f"out of memory{limit}"
        if self.signal:
            try:
                name = signals.Signals(self.signal).name
            except ValueError:
                name = ""
            return f"killed by signal {self.signal}" + (f" ({name})" if name else "")
        if self.exit_code:
            return f"exited with code {self.exit_code}"
        return "exited normally"

    def to_dict(self) -> dict:
        return {**asdict(self), "reason": self.describe()}

    @classmethod
    def from_dict(cls, data: dict) -> KernelEnd:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def ends_path(environ: dict[str, str] | None = None) -> Path | None:
    """This Jupyter server's ends file (`LABWORK_KERNEL_ENDS`); None outside a labwork server."""
    value = envvars.get(envvars.KERNEL_ENDS, environ)
    return Path(value) if value else None


def record_end(end: KernelEnd, path: Path | None = None) -> None:
    """Append `end` (0600, one line). Never raises: a kernel's end must not fail its shutdown."""
    path = path or ends_path()
    if path is None:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(end.to_dict()) + "\n")
    except OSError:
        pass


def read_ends(path: Path | None = None) -> list[KernelEnd]:
    """Every recorded end, oldest first; lines that do not parse are passed over."""
    path = path or ends_path()
    if path is None or not path.exists():
        return []
    out: list[KernelEnd] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(KernelEnd.from_dict(json.loads(line)))
        except (ValueError, TypeError):
            continue
    return out


def last_end(kernel_id: str, path: Path | None = None) -> KernelEnd | None:
    """The latest end recorded for `kernel_id` (a restarted kernel keeps its id), or None."""
    found = [e for e in read_ends(path) if e.kernel_id == kernel_id]
    return found[-1] if found else None
