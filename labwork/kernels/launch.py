"""Entry point of every labwork Python kernel: `python -m labwork.kernels.launch -f CONN`.

Runs in the run configuration's environment, which may not have labwork's dependencies: only the
standard library and ipykernel here. It records the launch with the control plane (in the
background, never delaying the kernel), preloads the `labwork` extension and, for PySpark run
configurations, makes `spark` and `sc` before the first cell.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import urllib.request
from pathlib import Path

from labwork import envvars
SPARK_LINES = [
    "from labwork.kernels.spark_startup import start_spark as _labwork_start_spark",
    "spark, sc = _labwork_start_spark()",
    "del _labwork_start_spark",
]


def _kernel_id(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        conn = argv[i + 1] if arg == "-f" and i + 1 < len(argv) else (arg[3:] if arg.startswith("-f=") else None)
        if conn:
            name = Path(conn).stem
            return name[len("kernel-"):] if name.startswith("kernel-") else name
    return None


def _control_url(home: str) -> str | None:
    url = envvars.get(envvars.URL)
    if url:
        return url
    try:
        return json.loads((Path(home) / "control.json").read_text())["url"]
    except (OSError, ValueError, KeyError):
        return None


def post_to_control_plane(path: str, body: dict, *, attempts: int = 1, name: str = "labwork-post") -> threading.Thread | None:
    """POST JSON to the control plane in a daemon thread (best effort, never blocks the kernel)."""
    home = envvars.get(envvars.HOME)
    url = _control_url(home) if home else None
    if not home or not url:
        return None  # no control plane known: nothing to tell

    def send() -> None:
        import time
        for attempt in range(attempts):
            try:
                token = envvars.kernel_credential(Path(home)) or ""
                req = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {token}"}, method="POST")
                urllib.request.urlopen(req, timeout=5).close()
                return
            except Exception as exc:  # noqa: BLE001 - never break a kernel over bookkeeping
                if attempt + 1 == attempts:
                    print(f"labwork: could not send {path}: {exc}", file=sys.stderr)
                else:
                    time.sleep(1 + attempt)

    thread = threading.Thread(target=send, name=name, daemon=True)
    thread.start()
    return thread


def record_launch(argv: list[str]) -> threading.Thread | None:
    """Tell the control plane which notebook started with which configuration."""
    project = envvars.get(envvars.PROJECT_DIR)
    if not project:
        return None
    notebook = os.environ.get("JPY_SESSION_NAME")
    if notebook and os.path.isabs(notebook) and notebook.startswith(project.rstrip("/") + "/"):
        notebook = os.path.relpath(notebook, project)
    raw_cfg = envvars.get(envvars.SERVER_CONFIG)
    body = {"project_path": project, "server_id": _int(envvars.get(envvars.SERVER_ID)),
            "kernel_id": _kernel_id(argv), "notebook": notebook,
            "runconfig": envvars.get(envvars.RUNCONFIG) or "",
            "server_config": json.loads(raw_cfg) if raw_cfg else {}}
    os.environ[envvars.KERNEL_ID] = body["kernel_id"] or ""
    return post_to_control_plane("/api/kernels/launched", body, name="labwork-launch-record")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    record_launch(argv)
    unprepared = envvars.get(envvars.UNPREPARED)
    if unprepared:
        from labwork.kernels.unprepared import UnpreparedKernel
        from ipykernel.kernelapp import IPKernelApp
        IPKernelApp.launch_instance(argv=argv, kernel_class=UnpreparedKernel)
        return
    extra = ["--IPKernelApp.extensions=labwork"]
    if envvars.get(envvars.FRAMEWORK) in ("pyspark", "spark"):
        extra += [f"--IPKernelApp.exec_lines={line}" for line in SPARK_LINES]
    from ipykernel.kernelapp import IPKernelApp
    IPKernelApp.launch_instance(argv=argv + extra)


if __name__ == "__main__":
    main()
