"""The job runner: `python -m labwork.jobs.runner RUN_DIR`, one papermill execution.

Started by `labwork.jobs.execution` in its own process group with the LABWORK_* environment of a
project's Jupyter server, so the kernel `"<project> <runconfig>"` resolves through labwork's kernel
spec manager exactly as in Jupyter. It reads RUN_DIR/spec.json, writes the output notebook where
the spec says (papermill saves it after every cell, and at the end whether the run succeeded or
failed), the kernel's pid to RUN_DIR/kernel.pid (so the parent can end a kernel on timeout or
cancel) and the outcome to RUN_DIR/result.json: {status, reason, exit_code}.

Docker and remote (SSH) run configurations run the same way: their specs name labwork's kernel
provisioners (entry points, so they resolve here as in Jupyter). Such a kernel has no local pid, so
a SIGTERM from the parent (timeout, cancel) kills it through its provisioner and papermill still
saves the output; a dead kernel's reason is the provisioner's (`end_reason`: the container's exit
code, out of memory, the host's exit code). An unprepared one fails before any kernel starts, with
the prepare command as the reason.
"""
from __future__ import annotations

import asyncio
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
PROVISIONED = ("labwork-docker", "labwork-ssh")  # kernels without a local process
_PROVISIONERS: list[Any] = []  # each kernel's provisioner (a remote one's end_reason outlives cleanup)


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
        out = await super()._async_pre_start_kernel(**kw)
        name = ((self.kernel_spec.metadata or {}).get("kernel_provisioner") or {}).get("provisioner_name")
        if name in PROVISIONED:
            self._end_on_sigterm()
        return out

    def _end_on_sigterm(self) -> None:
        """A container or remote kernel has no local pid for the parent to kill: its SIGTERM (timeout,
        cancel) kills the kernel here (once launched), and papermill saves the output as for a local one."""
        provisioner, loop = self.provisioner, asyncio.get_running_loop()

        def end_kernel() -> None:
            if provisioner.has_process:
                loop.remove_signal_handler(signal.SIGTERM)  # a second SIGTERM ends the runner
                print("[labwork] job runner: SIGTERM, ending the kernel", flush=True)
                asyncio.ensure_future(provisioner.kill())
            elif not self._launched:  # still launching: killed as soon as it is up
                self._end_pending = True
            else:  # the kernel is already gone: end as a local runner would
                loop.remove_signal_handler(signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGTERM)
        loop.add_signal_handler(signal.SIGTERM, end_kernel)

    _launched = False
    _end_pending = False

    async def _async_post_start_kernel(self, **kw: Any) -> None:
        await super()._async_post_start_kernel(**kw)
        self._launched = True
        _PROVISIONERS.append(self.provisioner)
        proc = getattr(self.provisioner, "process", None)
        if proc is not None:
            _KERNEL_PROCS.append(proc)
            (Path(_SPEC["run_dir"]) / "kernel.pid").write_text(str(proc.pid))
        cid = getattr(self.provisioner, "container_id", None)
        if cid:  # for the parent: a runner killed before its cleanup leaves no container behind
            cfg = getattr(self.provisioner, "provisioner_config", None) or {}
            (Path(_SPEC["run_dir"]) / "kernel.container").write_text(
                json.dumps({"id": cid, "docker_host": cfg.get("docker_host")}))
        if self._end_pending:
            os.kill(os.getpid(), signal.SIGTERM)


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


def _remote_reason() -> str | None:
    """A container's or remote host's word on why the kernel ended (the provisioner keeps it)."""
    for prov in reversed(_PROVISIONERS):
        reason = getattr(prov, "end_reason", None)
        if reason:
            if "docker" in type(prov).__module__ and "container" not in reason:
                return f"the kernel's container ended: {reason}"
            return f"the kernel died: {reason}"
    return None


def _unprepared(kernel_name: str) -> str | None:
    """The prepare message of an unprepared docker/remote run configuration, None when it is ready."""
    spec = JobKernelSpecManager().get_kernel_spec(kernel_name)  # unknown: papermill's own error follows
    if (spec.metadata or {}).get("labwork", {}).get("prepared") is False:
        return (spec.env or {}).get("LABWORK_UNPREPARED") or f"the run configuration of {kernel_name} is not prepared"
    return None


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
        unprepared = _unprepared(spec["kernel_name"])
    except Exception:  # noqa: BLE001 - no such kernel: papermill says so below
        unprepared = None
    if unprepared:
        return {"status": "failed", "reason": unprepared, "error": "unprepared"}
    try:
        pm.execute_notebook(spec["notebook_path"], spec["output_path"], parameters=spec["parameters"],
                            kernel_name=spec["kernel_name"], cwd=spec["cwd"], log_output=True,
                            progress_bar=False, start_timeout=spec.get("start_timeout", 120),
                            kernel_manager_class=JobKernelManager)
        return {"status": "completed", "reason": None}
    except pm.PapermillExecutionError as exc:
        return {"status": "failed", "reason": _cell_error(exc), "error": "cell"}
    except DeadKernelError:
        remote = _remote_reason()
        if remote and not _KERNEL_PROCS:
            return {"status": "failed", "reason": remote, "error": "kernel"}
        return {"status": "failed", "reason": death_reason(_kernel_code()), "error": "kernel",
                "exit_code": _kernel_code()}
    except Exception as exc:  # noqa: BLE001 - reported as the run's reason, never a bare traceback
        traceback.print_exc()
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        code = _kernel_code()
        if "died" in text.lower() and not _KERNEL_PROCS and _remote_reason():
            return {"status": "failed", "reason": _remote_reason(), "error": "kernel"}
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
