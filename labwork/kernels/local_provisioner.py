"""The kernel provisioner of labwork's local kernels: jupyter_client's LocalProvisioner plus a
memory limit and the record of how each kernel ended.

A local run configuration's kernel spec names it (`labwork-local`) with its config: the run
configuration, `memory_limit` (bytes, from `[resources] memory`) and `enforce`
(settings.kernel_memory_limits). With a limit, the kernel command is started through
labwork.kernels.memory_exec, which joins the kernel's own cgroup (labwork.kernels.cgroups) or sets
RLIMIT_AS before exec. When the kernel process ends without Jupyter asking (a crash, a signal,
memory gone), the end is reported (labwork.kernels.end_report) with whether the cgroup saw an
out-of-memory kill.
"""
from __future__ import annotations

import asyncio
import sys
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner

from labwork.kernels import cgroups
from labwork.kernels.end_report import end_from_status, report_end
from labwork.kernels.ends import size_text

# Kernel id -> (pid, memory limit) of the limited kernels running in this server
# (labwork.kernels.memory_display gives jupyter-resource-usage the sum).
LIMITS: dict[str, tuple[int, int]] = {}


class LocalKernelProvisioner(LocalProvisioner):  # type: ignore[misc]
    """A local kernel with an optional memory limit whose end is recorded."""

    _cgroup: cgroups.KernelCgroup | None = None
    _support: cgroups.Support | None = None
    _stopping = False
    _reported = False

    def __init__(self, **kwargs: Any) -> None:
        # jupyter_client passes the spec's provisioner config as keyword arguments
        own = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("kernel_id", "kernel_spec", "parent", "config", "log")}
        super().__init__(**kwargs)
        self.provisioner_config = own

    @property
    def memory_limit(self) -> int | None:
        value = (self.provisioner_config or {}).get("memory_limit")
        return int(value) if value else None

    @property
    def run_config(self) -> str | None:
        return (self.provisioner_config or {}).get("runconfig")

    def _limit_prefix(self) -> list[str]:
        """The memory_exec prefix of the kernel command ([] without a limit or a way to set one)."""
        limit = self.memory_limit
        if not limit:
            return []
        if self._support is None:
            self._support = cgroups.choose(str((self.provisioner_config or {}).get("enforce") or "auto"))
        support = self._support
        prefix = [sys.executable, "-m", "labwork.kernels.memory_exec"]
        if support.kind in ("cgroup1", "cgroup2"):
            try:
                if self._cgroup is None:
                    self._cgroup = cgroups.KernelCgroup(support, self.kernel_id or "kernel", limit)
                else:
                    self._cgroup.mark()
                self.log.info("labwork: kernel %s limited to %s in %s %s", self.kernel_id, size_text(limit),
                              support.kind, self._cgroup.path)
                return prefix + ["--cgroup", str(self._cgroup.procs_file), "--"]
            except OSError as exc:
                self._support = support = cgroups.Support("rlimit", None, f"cannot make a cgroup: {exc}")
        if support.kind == "rlimit":
            self.log.warning("labwork: kernel %s: no cgroup for its memory limit (%s); RLIMIT_AS %s bounds "
                             "its address space instead (an allocation past it fails with MemoryError)",
                             self.kernel_id, support.why, size_text(limit))
            return prefix + ["--rlimit", str(limit), "--"]
        self.log.warning("labwork: kernel %s runs WITHOUT its memory limit of %s: %s", self.kernel_id,
                         size_text(limit), support.why)
        return []

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        prefix = await asyncio.to_thread(self._limit_prefix)
        self._stopping, self._reported = False, False
        info = await super().launch_kernel(prefix + list(cmd), **kwargs)
        if self.memory_limit and self.kernel_id:
            LIMITS[self.kernel_id] = (self.process.pid, self.memory_limit)
        return info

    async def poll(self) -> int | None:
        process = self.process
        code = await super().poll()
        if process is not None and code is not None:
            self._ended(code, process.pid)
        return code

    def _ended(self, status: int, pid: int) -> None:
        if self._reported:
            return
        self._reported = True
        if self._stopping:
            return  # asked for by Jupyter (shutdown, restart): not a death
        killed_by = -status if status < 0 else None
        oom = self._cgroup.out_of_memory(killed_by) if self._cgroup is not None else False
        end = end_from_status(self.kernel_id or "", status, run_config=self.run_config, oom=oom,
                              memory_limit=self.memory_limit, where="local")
        report_end(end, self.log, pid=pid)

    async def shutdown_requested(self, restart: bool = False) -> None:
        self._stopping = True
        await super().shutdown_requested(restart=restart)

    async def kill(self, restart: bool = False) -> None:
        if self.process is not None and self.process.poll() is not None:
            self._ended(self.process.returncode, self.process.pid)  # it died before Jupyter's kill
        self._stopping = True
        await super().kill(restart=restart)

    async def terminate(self, restart: bool = False) -> None:
        if self.process is not None and self.process.poll() is not None:
            self._ended(self.process.returncode, self.process.pid)
        self._stopping = True
        await super().terminate(restart=restart)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if not restart:
            LIMITS.pop(self.kernel_id or "", None)
            if self._cgroup is not None:
                cg, self._cgroup = self._cgroup, None
                await asyncio.to_thread(cg.remove)
