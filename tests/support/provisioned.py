"""Kernels started the way jupyter_server starts them: a jupyter_client KernelManager with
labwork's kernel spec manager, so the spec's kernel provisioner (Docker, SSH) is the real one."""
from __future__ import annotations

import os

from tests.support.kernels import CellResult


class ProvisionedKernel:
    """A kernel started the way jupyter_server starts it: KernelManager + labwork's spec manager."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        from jupyter_client import KernelManager

        from labwork.kernels.specmanager import LabworkKernelSpecManager
        old = dict(os.environ)
        os.environ.update(env)
        try:
            self.km = KernelManager(kernel_name=name, kernel_spec_manager=LabworkKernelSpecManager())
            self.km.start_kernel(env={**os.environ, "JPY_SESSION_NAME": env.get("JPY_SESSION_NAME", "")})
        finally:
            os.environ.clear()
            os.environ.update(old)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 120) -> CellResult:
        res = CellResult(status="?")

        def hook(msg: dict) -> None:
            kind = msg["msg_type"]
            if kind == "stream":
                res.stdout += msg["content"]["text"]
            elif kind in ("execute_result", "display_data"):
                res.outputs.append({"msg_type": kind, "content": msg["content"]})
            elif kind == "error":
                res.error = msg["content"]
        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        res.status = reply["content"]["status"]
        return res

    def shell_reply(self, msg_id: str, timeout: float = 60) -> dict:
        """The shell reply to `msg_id` (stale kernel_info replies from wait_for_ready are skipped)."""
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def shutdown(self, now: bool = False) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=now)
