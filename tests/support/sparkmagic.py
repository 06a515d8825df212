"""A real sparkmagic kernel started through labwork's launcher (`labwork.kernels.sparkmagic_launch`)
against a gateway, driven with jupyter_client; and frames carried out of kernels and drivers."""
from __future__ import annotations

import base64
import io
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from labwork.gateway.sparkmagic_kernels import sparkmagic_kernel_spec


class Cell:
    """One executed cell: its reply and its iopub outputs."""

    def __init__(self, reply: dict, outputs: list[dict]) -> None:
        self.reply, self.outputs = reply, outputs

    @property
    def ok(self) -> bool:
        return self.reply["content"]["status"] == "ok"

    @property
    def text(self) -> str:
        parts = []
        for msg in self.outputs:
            c = msg["content"]
            if msg["msg_type"] == "stream":
                parts.append(c["text"])
            elif msg["msg_type"] in ("execute_result", "display_data"):
                data = c["data"]
                parts.append(data.get("text/plain", "") + data.get("text/html", ""))
            elif msg["msg_type"] == "error":
                parts.append(c["ename"] + ": " + c["evalue"] + "\n".join(c["traceback"]))
        return "".join(parts)

    def has(self, mime: str) -> bool:
        return any(mime in m["content"].get("data", {}) for m in self.outputs
                   if m["msg_type"] in ("execute_result", "display_data"))


class SparkmagicKernel:
    """labwork's PySpark (or Spark) sparkmagic kernel against the Livy server at `livy_url`."""

    def __init__(self, root: Path, livy_url: str, *, language: str = "python",
                 home: Path | None = None, driver_memory: str = "512m", project: str = "arrowProj",
                 token: str | None = None) -> None:
        """`token`: the kernel's LABWORK_TOKEN, sent by labwork's authenticator (`TOKEN_AUTH`);
        None: no authentication."""
        from labwork.gateway.sparkmagic_kernels import TOKEN_AUTH
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager
        root.mkdir(parents=True, exist_ok=True)
        spec = sparkmagic_kernel_spec(display_name="arrow spark", language=language,
                                      conf_dir=root / "conf", livy_url=livy_url,
                                      auth=TOKEN_AUTH if token else "None",
                                      session_conf={"driverMemory": driver_memory,
                                                    "conf": {"spark.sql.shuffle.partitions": "2"}},
                                      project=project)
        module = spec["argv"][2]
        spec["argv"] = [sys.executable, "-m", "labwork.kernels.sparkmagic_launch", "--module",
                        module, "-f", "{connection_file}"]
        kdir = root / "kernels" / "arrow-spark"
        kdir.mkdir(parents=True, exist_ok=True)
        (kdir / "kernel.json").write_text(json.dumps(spec))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LABWORK_", "JPY_"))}
        env["LABWORK_HOME"] = str(home or root / "home")
        env["LABWORK_HISTORY"] = "0"
        if token:
            env["LABWORK_TOKEN"] = token
        self.km = KernelManager(kernel_name="arrow-spark",
                                kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(root / "kernels")]))
        self.km.start_kernel(cwd=str(root), env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def __call__(self, code: str, timeout: float = 600) -> Cell:
        outputs: list[dict] = []

        def hook(msg: dict) -> None:
            if msg["msg_type"] in ("stream", "execute_result", "display_data", "error"):
                outputs.append(msg)

        reply = self.kc.execute_interactive(code, output_hook=hook, timeout=timeout)
        return Cell(reply, outputs)

    def local_frame(self, name: str) -> Any:
        """The kernel's local pandas DataFrame `name`, pickled out through a `%%local` cell."""
        marker = f"FRAME-{uuid.uuid4().hex}:"
        cell = self(f"%%local\nimport base64 as _b, pickle as _p\n"
                    f"print({marker!r} + _b.b64encode(_p.dumps({name})).decode())")
        assert cell.ok, cell.text
        return unpickle_after(cell.text, marker)

    def stop(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)


def pickled_frame_code(expr: str, marker: str) -> str:
    """Python for a driver statement that prints `expr` (a pandas frame) pickled after `marker`."""
    return (f"import base64 as _b, pickle as _p\n"
            f"print({marker!r} + _b.b64encode(_p.dumps({expr})).decode())")


def unpickle_after(text: str, marker: str) -> Any:
    import pickle
    raw = text.split(marker, 1)[1].split()[0]
    return pickle.load(io.BytesIO(base64.b64decode(raw)))
