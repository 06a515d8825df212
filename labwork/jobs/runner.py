"""The job runner: `python -m labwork.jobs.runner RUN_DIR`, one papermill execution.

Started by `labwork.jobs.execution` in its own process group with the LABWORK_* environment of a
project's Jupyter server, so the kernel `"<project> <runconfig>"` resolves through labwork's kernel
spec manager exactly as in Jupyter. It reads RUN_DIR/spec.json, writes the output notebook where
the spec says (papermill saves it after every cell, and at the end whether the run succeeded or
failed), the kernel's pid to RUN_DIR/kernel.pid (so the parent can end a kernel on timeout or
cancel) and the outcome to RUN_DIR/result.json: {status, reason, exit_code}.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from labwork.kernels.specmanager import LabworkKernelSpecManager

_SPEC: dict[str, Any] = {}
_KERNEL_PROCS: list[Any] = []  # the Popen of each kernel started (its returncode outlives cleanup)


class JobKernelSpecManager(LabworkKernelSpecManager):
    """The project's kernels, made as Jupyter's are, with run history on in every run configuration
    (jobs always record it: in the kernel, or through the gateway for sparkmagic kernels) and the
    notebook named as Jupyter names it."""

    def _labwork_specs(self) -> dict[str, dict[str, Any]]:
        from labwork import envvars
        from labwork.kernels.specs import project_kernel_specs
        from labwork.project.files import load_project
        from labwork.settings import load_settings
        project = load_project(envvars.get(envvars.PROJECT_DIR))  # a broken project: the run's reason
        for rc in project.runconfigs.values():
            rc.history = True
        raw = envvars.get(envvars.SERVER_CONFIG)
        return project_kernel_specs(project, load_settings(), json.loads(raw) if raw else None,
                                    envvars.get(envvars.URL))

    def get_kernel_spec(self, kernel_name: str):  # noqa: ANN201 - a KernelSpec
        spec = super().get_kernel_spec(kernel_name)
        spec.env = dict(spec.env or {}) | {"JPY_SESSION_NAME": _SPEC.get("notebook_path", "")}
        return spec


class JobKernelManager(AsyncKernelManager):
    """nbclient's kernel manager with labwork's specs, a known kernel id (run history links by it) and the
    kernel's process kept, so its exit code or signal can be reported when it dies."""

    @default("kernel_spec_manager")
    def _default_spec_manager(self) -> JobKernelSpecManager:
        return JobKernelSpecManager(data_dir=self.data_dir)

    async def _async_pre_start_kernel(self, **kw: Any):  # noqa: ANN202
        kid = _SPEC.get("kernel_id")
        if kid:
            self.kernel_id = kid
            self.connection_file = str(Path(_SPEC["run_dir"]) / f"kernel-{kid}.json")
        return await super()._async_pre_start_kernel(**kw)

    async def _async_post_start_kernel(self, **kw: Any) -> None:
        await super()._async_post_start_kernel(**kw)
        proc = getattr(self.provisioner, "process", None)
        if proc is not None:
            _KERNEL_PROCS.append(proc)
            (Path(_SPEC["run_dir"]) / "kernel.pid").write_text(str(proc.pid))


def death_reason(code: int | None) -> str:
    """Why a kernel process ended, in words."""
    if code is None:
        return "the kernel died (its exit status is unknown)"
    if code < 0:
        sig = -code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        text = f"the kernel was killed by {name} (signal {sig})"
        if sig == signal.SIGKILL:
            text += "; out of memory (the kernel's memory limit or the system's OOM killer) or a kill -9"
        return text
    return f"the kernel exited with code {code}"


def _kernel_code() -> int | None:
    for proc in reversed(_KERNEL_PROCS):
        try:
            return proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - still running or gone: unknown
            return proc.returncode
    return None


def _cell_error(exc: Any) -> str:
    count = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    return f"cell {count} raised {ename}: {evalue}".strip()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import papermill as pm
    from nbclient.exceptions import DeadKernelError
    _SPEC.update(spec)
    try:
        pm.execute_notebook(spec["notebook_path"], spec["output_path"], parameters=spec["parameters"],
                            kernel_name=spec["kernel_name"], cwd=spec["cwd"], log_output=True,
                            progress_bar=False, start_timeout=spec.get("start_timeout", 120),
                            kernel_manager_class=JobKernelManager)
        return {"status": "completed", "reason": None}
    except pm.PapermillExecutionError as exc:
        return {"status": "failed", "reason": _cell_error(exc), "error": "cell"}
    except DeadKernelError:
        return {"status": "failed", "reason": death_reason(_kernel_code()), "error": "kernel",
                "exit_code": _kernel_code()}
    except Exception as exc:  # noqa: BLE001 - reported as the run's reason, never a bare traceback
        traceback.print_exc()
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        code = _kernel_code()
        if code is not None and "died" in text.lower():
            return {"status": "failed", "reason": death_reason(code), "error": "kernel", "exit_code": code}
        return {"status": "failed", "reason": f"{type(exc).__name__}: {text}"[:2000], "error": "runner"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    run_dir = Path(argv[0])
    spec = json.loads((run_dir / "spec.json").read_text())
    spec["run_dir"] = str(run_dir)
    result = run(spec)
    tmp = run_dir / ".result.json.tmp"
    tmp.write_text(json.dumps(result))
    os.replace(tmp, run_dir / "result.json")
    print(f"[labwork] job runner: {result['status']}" + (f": {result['reason']}" if result.get("reason") else ""),
          flush=True)
    return 0 if result["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
