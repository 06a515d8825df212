"""The memory limit JupyterLab's status bar shows (jupyter-resource-usage's `mem_limit`).

jupyter-resource-usage counts the resident memory of the whole Jupyter server: the server itself
and every kernel. The limit it is given here is what that total may reach while each limited
kernel stays under its own limit: the memory of everything else as it is now, plus the limits of
the kernels that have one (labwork.kernels.local_provisioner.LIMITS). With no limited kernel it
is 0, which the status bar shows as no limit. A server configuration file (written by
`write_config`, found through JUPYTER_CONFIG_PATH) sets it on every server labwork starts.
"""
from __future__ import annotations

import os
from pathlib import Path

CONFIG = '''# Written by labwork (labwork.kernels.memory_display): the status bar's memory limit.
from labwork.kernels.memory_display import mem_limit as _labwork_mem_limit
c.ResourceUseDisplay.mem_limit = _labwork_mem_limit
'''


def _tree_rss(pid: int) -> int:
    import psutil
    try:
        proc = psutil.Process(pid)
        total = 0
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return 0


def mem_limit(rss: int = 0, pss: int | None = None, **_: object) -> int:
    """Bytes: `rss` less the limited kernels' own use, plus their limits; 0 without any."""
    from labwork.kernels.local_provisioner import LIMITS
    limited = dict(LIMITS)
    if not limited:
        return 0
    used = sum(_tree_rss(pid) for pid, _limit in limited.values())
    return max(0, rss - used) + sum(limit for _pid, limit in limited.values())


def write_config(folder: Path) -> Path:
    """The Jupyter config folder holding `jupyter_server_config.py` (0700/0600), for JUPYTER_CONFIG_PATH."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "jupyter_server_config.py"
    if not path.is_file() or path.read_text() != CONFIG:
        tmp = folder / f".jupyter_server_config.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(CONFIG)
        tmp.replace(path)
    return folder
