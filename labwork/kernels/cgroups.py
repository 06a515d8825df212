"""Memory limits of local kernels: each kernel in a cgroup of its own, a child of labwork's.

Where the kernel's cgroup is made (the Jupyter server's own cgroup, which it shares with the
control plane that started it):

* cgroup v2 (`cgroup2` mounted, `memory` in the controllers of our cgroup): a child
  `labwork-kernel-<id>` with `memory.max` (and `memory.swap.max` 0, so swap cannot hide the
  limit); the kernel ran out of memory when `memory.events` counts an `oom_kill`. v2 lets a cgroup
  hand `memory` to children only when it holds no processes itself, so this works where labwork's
  cgroup is delegated that way (`systemd-run --user -p Delegate=yes`, a container whose cgroup is
  empty but for a child); elsewhere `+memory` is refused and the next way is tried;
* cgroup v1 (the `memory` controller mounted on its own): a child with `memory.limit_in_bytes`
  (and `memory.memsw.limit_in_bytes` where swap is accounted); out of memory when
  `memory.oom_control` counts an `oom_kill` (kernels before 4.13 lack it: then a SIGKILL while
  `memory.failcnt` grew counts);
* neither (no permission, no controller): RLIMIT_AS for the kernel process, which bounds its
  address space, not its resident memory, and not its children (docs/projects.md says what follows).

Only the standard library: the server loads this for every kernel start.
"""
from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "labwork-kernel-"


@dataclass(frozen=True)
class Support:
    """What can enforce a limit here: `kind` is "cgroup2", "cgroup1", "rlimit" or "none"; `base`
    the cgroup folder kernels' cgroups go under; `why` says why a cgroup is not used."""

    kind: str
    base: Path | None = None
    why: str = ""


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _mounts(proc: Path) -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fstype, super options) of each cgroup mount (/proc/self/mountinfo)."""
    out = []
    for line in _read(proc / "self" / "mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) >= 5 and len(rest) >= 3 and rest[0] in ("cgroup", "cgroup2"):
            out.append((fields[3], fields[4].replace("\\040", " "), rest[0], set(rest[2].split(","))))
    return out


def _own_dir(root: str, mount: str, path: str) -> Path:
    """Our cgroup's folder: `path` (from /proc/self/cgroup) seen through a mount of `root`."""
    rel = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    return Path(mount) if rel in (".", "") else Path(mount) / rel


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def detect(proc: Path = Path("/proc")) -> Support:
    """The cgroup a kernel's cgroup can be made under, v2 first, else why none can."""
    lines = [ln.split(":", 2) for ln in _read(proc / "self" / "cgroup").splitlines() if ln.count(":") >= 2]
    mounts = _mounts(proc)
    reasons: list[str] = []
    v1 = next((p for _, ctrl, p in lines if "memory" in ctrl.split(",")), None)
    v2 = next((p for hid, ctrl, p in lines if hid == "0" and ctrl == ""), None)
    if v2 is not None:
        m = next((m for m in mounts if m[2] == "cgroup2"), None)
        if m is None:
            reasons.append("no cgroup2 mount")
        else:
            own = _own_dir(m[0], m[1], v2)
            if "memory" not in _read(own / "cgroup.controllers").split():
                reasons.append(f"cgroup v2 at {own} has no memory controller")
            elif not _writable(own):
                reasons.append(f"cgroup v2 at {own} is not writable")
            elif "memory" in _read(own / "cgroup.subtree_control").split() or _enable_memory(own):
                return Support("cgroup2", own)
            else:
                reasons.append(f"cgroup v2 at {own} cannot hand memory to children (it holds processes)")
    if v1 is not None:
        m = next((m for m in mounts if m[2] == "cgroup" and "memory" in m[3]), None)
        if m is None:
            reasons.append("the v1 memory controller is not mounted")
        else:
            own = _own_dir(m[0], m[1], v1)
            if _writable(own):
                return Support("cgroup1", own)
            reasons.append(f"cgroup v1 memory at {own} is not writable")
    if not reasons:
        reasons.append("no memory cgroup controller")
    return Support("none", None, "; ".join(reasons))


def _enable_memory(own: Path) -> bool:
    try:
        (own / "cgroup.subtree_control").write_text("+memory")
        return True
    except OSError:
        return False


def choose(mode: str, proc: Path = Path("/proc")) -> Support:
    """The enforcement for `mode` (settings.kernel_memory_limits): auto, cgroup, rlimit, off."""
    if mode == "off":
        return Support("none", None, "kernel_memory_limits is 'off'")
    if mode == "rlimit":
        return Support("rlimit", None, "kernel_memory_limits is 'rlimit'")
    found = detect(proc)
    if found.kind == "none" and mode == "auto":
        return Support("rlimit", None, found.why)
    return found


class KernelCgroup:
    """One kernel's cgroup: made with its limit, joined by the kernel before it runs (through
    labwork.kernels.memory_exec), asked whether memory ran out, removed when the kernel is gone."""

    def __init__(self, support: Support, name: str, limit: int) -> None:
        assert support.base is not None and support.kind in ("cgroup1", "cgroup2")
        self.kind = support.kind
        self.path = support.base / (PREFIX + name)
        self.limit = limit
        self.path.mkdir(exist_ok=True)
        if self.kind == "cgroup2":
            (self.path / "memory.max").write_text(str(limit))
            if (self.path / "memory.swap.max").exists():
                (self.path / "memory.swap.max").write_text("0")
        else:
            (self.path / "memory.limit_in_bytes").write_text(str(limit))
            memsw = self.path / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                try:
                    memsw.write_text(str(limit))
                except OSError:
                    pass  # swap accounting off at boot: the memory limit alone holds
        self.baseline = (0, 0)
        self.mark()

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def _counts(self) -> tuple[int, int]:
        """(oom kills, failures to charge) so far."""
        if self.kind == "cgroup2":
            events = dict(ln.split() for ln in _read(self.path / "memory.events").splitlines() if " " in ln)
            return int(events.get("oom_kill", 0)), int(events.get("max", 0))
        ctl = dict(ln.split() for ln in _read(self.path / "memory.oom_control").splitlines() if " " in ln)
        fails = _read(self.path / "memory.failcnt").strip()
        return int(ctl.get("oom_kill", -1)), int(fails or 0)

    def mark(self) -> None:
        """Count from now (a restarted kernel keeps its cgroup)."""
        self.baseline = self._counts()

    def out_of_memory(self, killed_by: int | None) -> bool:
        """Whether memory ran out since `mark()`; `killed_by` the signal that ended the kernel."""
        kills, fails = self._counts()
        if kills >= 0:
            return kills > self.baseline[0]
        return killed_by == signal.SIGKILL and fails > self.baseline[1]  # v1 before oom_kill counts

    def pids(self) -> list[int]:
        return [int(p) for p in _read(self.procs_file).split() if p.isdigit()]

    def remove(self) -> None:
        """Kill what is left in it (a kernel's orphaned children) and remove it; never raises."""
        for _ in range(50):
            left = self.pids()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    return
            time.sleep(0.1)
