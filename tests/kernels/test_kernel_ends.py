"""Local kernels' memory limits and ends, with real kernels started through labwork's spec manager
and provisioner (labwork.kernels.local_provisioner), as jupyter_server starts them."""
from __future__ import annotations

from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from labwork.kernels import cgroups
from labwork.kernels.ends import last_end, read_ends
from labwork.kernels.local_provisioner import LIMITS
from labwork.kernels.memory_display import mem_limit
from labwork.kernels.specmanager import LabworkKernelSpecManager
from labwork.project import init_project
from tests.support.waiting import wait_for

CGROUPS = cgroups.detect()
needs_cgroup = pytest.mark.skipif(CGROUPS.kind not in ("cgroup1", "cgroup2"),
                                  reason=f"no memory cgroup for kernels here: {CGROUPS.why}")
ALLOCATE = "x = b'\\x01' * (600 << 20)"  # resident at once (a zero-filled buffer would not be)


@pytest.fixture
def ends(tmp_path: Path, labwork_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with run configuration `small` (256 MiB) and the ends file of this 'server'."""
    root = init_project(tmp_path / "kp", "kproj").root
    (root / ".labwork" / "runconfig" / "small.toml").write_text('target = "local"\n[resources]\nmemory = "256m"\n')
    monkeypatch.setenv("LABWORK_PROJECT_DIR", str(root))
    path = tmp_path / "server.kernel-ends.jsonl"
    monkeypatch.setenv("LABWORK_KERNEL_ENDS", str(path))
    return path


def started(name: str) -> tuple[KernelManager, object]:
    km = KernelManager(kernel_spec_manager=LabworkKernelSpecManager(), kernel_name=name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    return km, kc


def run_until_dead(name: str, code: str) -> KernelManager:
    km, kc = started(name)
    try:
        kc.execute(code)
        wait_for(lambda: not km.is_alive(), timeout=120, what="the kernel to die")
        return km
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@needs_cgroup
def test_a_kernel_past_its_memory_limit_dies_out_of_memory(ends: Path) -> None:
    km = run_until_dead("labwork-small", ALLOCATE)
    end = last_end(km.kernel_id, ends)
    assert end is not None and end.oom and end.signal == 9
    assert end.describe() == "out of memory (limit 256 MiB)"
    assert end.run_config == "small" and end.memory_limit == 256 << 20
    assert (ends.stat().st_mode & 0o777) == 0o600
    assert not list(CGROUPS.base.glob(f"{cgroups.PREFIX}{km.kernel_id}")), "the kernel's cgroup is removed"


def cell_output(kc: object, code: str) -> str:
    out: list[str] = []
    reply = kc.execute_interactive(code, timeout=60, output_hook=lambda msg: out.append(msg["content"].get("text", "")))
    assert reply["content"]["status"] == "ok"
    return "".join(out)


@needs_cgroup
def test_the_limit_is_the_kernels_own_cgroup(ends: Path) -> None:
    km, kc = started("labwork-small")
    folder = CGROUPS.base / f"{cgroups.PREFIX}{km.kernel_id}"
    try:
        assert f"{cgroups.PREFIX}{km.kernel_id}" in cell_output(kc, "print(open('/proc/self/cgroup').read())")
        limit = folder / ("memory.max" if CGROUPS.kind == "cgroup2" else "memory.limit_in_bytes")
        assert int(limit.read_text()) == 256 << 20
        # the status bar's limit: what the rest uses now plus the kernel's limit
        assert LIMITS[km.kernel_id] == (km.provisioner.pid, 256 << 20)
        shown = mem_limit(rss=10 << 30)
        assert (10 << 30) - (1 << 30) + (256 << 20) < shown < (10 << 30) + (256 << 20)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    assert read_ends(ends) == [], "a shutdown Jupyter asked for is no death"
    assert not folder.exists()
    assert km.kernel_id not in LIMITS and mem_limit(rss=10 << 30) == 0


def test_killed_by_a_signal_and_exit_codes_are_said(ends: Path) -> None:
    km = run_until_dead("labwork-local", "import os; os.kill(os.getpid(), 9)")
    assert last_end(km.kernel_id, ends).describe() == "killed by signal 9 (SIGKILL)"
    km = run_until_dead("labwork-local", "import os; os._exit(3)")
    end = last_end(km.kernel_id, ends)
    assert end.describe() == "exited with code 3" and not end.oom and end.memory_limit is None


def test_rlimit_fallback_refuses_the_allocation_and_the_kernel_lives(ends: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no cgroup can be had (forced here): RLIMIT_AS, so the cell gets MemoryError."""
    monkeypatch.setenv("LABWORK_KERNEL_MEMORY_LIMITS", "rlimit")
    rc = Path(ends.parent / "kp" / ".labwork" / "runconfig" / "small.toml")
    rc.write_text('target = "local"\n[resources]\nmemory = "2g"\n')
    km, kc = started("labwork-small")
    try:
        said = cell_output(kc, "import resource\ntry:\n    x = b'\\x01' * (3 << 30)\nexcept MemoryError:\n"
                               "    print('refused')\nprint(resource.getrlimit(resource.RLIMIT_AS)[0])")
        assert "refused" in said and str(2 << 30) in said
        assert km.is_alive()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert read_ends(ends) == []


def test_off_runs_without_a_limit(ends: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABWORK_KERNEL_MEMORY_LIMITS", "off")
    km, kc = started("labwork-small")
    try:
        assert cgroups.PREFIX not in cell_output(kc, "print(open('/proc/self/cgroup').read())")
        assert "-1" in cell_output(kc, "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
