"""Containers of Docker job kernels that their runner left behind, found by label and removed.

A job's Docker kernel is a container labelled `labwork.kernel=<the run's kernel id>` (the kernel id
is in the run's spec.json). Its runner removes it at the end; a runner killed before its cleanup
leaves it running. The control plane then removes it: when it sees the runner end
(`Executor._conclude`), and at start-up for runners that died while it was not running
(`Executor.adopt`). The daemons asked are the one the runner wrote down (`kernel.container`, once
the container started) and that of the run configuration's docker target (a runner killed before
it wrote that file); a run on any other kind of kernel asks none. Each removal is a line in the run's log.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labwork.kernels.containers import KERNEL_LABEL, Daemon, remove_labelled

log = logging.getLogger("labwork.jobs")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _daemons(run_dir: Path, spec: dict[str, Any]) -> list[Daemon]:
    """The Docker daemons the run's kernel may be on (host None: the default one)."""
    out: list[Daemon] = []
    written = _read(run_dir / "kernel.container")
    if written.get("id"):
        out.append(Daemon(written.get("docker_host")))
    try:  # the daemon of the run configuration whose kernel the run asked for, if it is a docker one
        from labwork.kernels.specs import kernel_name
        from labwork.project.files import load_project
        from labwork.project.models import DockerTarget
        project = load_project(Path(spec["cwd"]))
        for name, rc in project.runconfigs.items():
            target = project.targets.get(rc.target)
            if kernel_name(name) == spec.get("kernel_name") and isinstance(target, DockerTarget):
                out.append(Daemon(target.docker_host))
    except Exception:  # noqa: BLE001 - the project moved or broke: the written daemon is all we know
        pass
    return list(dict.fromkeys(out))


def remove_left_containers(run_dir: Path, note: Callable[[Path, str], None]) -> list[str]:
    """Remove every container labelled with the run's kernel id; the ids removed (short)."""
    spec = _read(run_dir / "spec.json")
    kernel_id = spec.get("kernel_id")
    if not kernel_id:
        return []
    removed = remove_labelled(_daemons(run_dir, spec), {KERNEL_LABEL: kernel_id},
                              lambda text: note(run_dir / "log.txt", text), "the runner left")
    if removed:
        log.info("job run %s: removed the kernel's container(s) %s its runner left", run_dir.name, removed)
    return removed
