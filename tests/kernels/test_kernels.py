"""Kernels from run configurations, started through the real spec manager and jupyter_client."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from labwork.kernels.specmanager import LabworkKernelSpecManager
from labwork.kernels.specs import kernel_spec, spark_conf_for
from labwork.project import attach_target, init_project, load_project
from labwork.settings import load_settings


@pytest.fixture
def kproject(tmp_path: Path, labwork_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = init_project(tmp_path / "kp", "kproj").root
    monkeypatch.setenv("LABWORK_PROJECT_DIR", str(root))
    return root


def run(ksm: LabworkKernelSpecManager, name: str, code: str, timeout: float = 180) -> dict:
    """Start kernel NAME, run CODE, return {"status", "data", "stdout", "error"}."""
    km = KernelManager(kernel_spec_manager=ksm, kernel_name=name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    out: dict = {"data": {}, "stdout": "", "error": None}
    try:
        kc.wait_for_ready(timeout=timeout)

        def hook(msg: dict) -> None:
            c = msg["content"]
            if msg["msg_type"] in ("execute_result", "display_data"):
                out["data"].update(c["data"])
            elif msg["msg_type"] == "stream":
                out["stdout"] += c["text"]
            elif msg["msg_type"] == "error":
                out["error"] = c
        reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        out["status"] = reply["content"]["status"]
        return out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_one_kernel_per_runconfig_named_project_runconfig(kproject: Path) -> None:
    attach_target(kproject, "spark", "cluster", {"master": "local[2]"})
    specs = LabworkKernelSpecManager().get_all_specs()
    names = {k: v["spec"]["display_name"] for k, v in specs.items()}
    assert names["labwork-local"] == "kproj local"
    assert names["labwork-cluster"] == "kproj cluster"
    assert "python3" in names  # stock kernels stay


def test_attach_and_detach_change_the_list_without_restart(kproject: Path) -> None:
    ksm = LabworkKernelSpecManager()
    assert "labwork-extra" not in ksm.find_kernel_specs()
    attach_target(kproject, "local", "extra", {})
    assert ksm.get_kernel_spec("labwork-extra").display_name == "kproj extra"
    from labwork.project import detach_target
    detach_target(kproject, "extra")
    assert "labwork-extra" not in ksm.get_all_specs()


def test_broken_runconfig_hides_no_other_kernel(kproject: Path) -> None:
    (kproject / ".labwork" / "runconfig" / "broken.toml").write_text("target = 3\n")
    specs = LabworkKernelSpecManager().get_all_specs()
    assert "labwork-local" in specs and "labwork-broken" not in specs


def test_local_kernel_runs_and_loads_the_labwork_extension(kproject: Path) -> None:
    ksm = LabworkKernelSpecManager()
    assert run(ksm, "labwork-local", "1+1")["data"]["text/plain"] == "2"
    helped = run(ksm, "labwork-local", "%labwork --help")
    assert helped["status"] == "ok" and "history" in (helped["stdout"] + json.dumps(helped["data"]))


def test_kernel_sees_its_context(kproject: Path) -> None:
    out = run(LabworkKernelSpecManager(), "labwork-local",
              "import os; print(os.environ['LABWORK_PROJECT'], os.environ['LABWORK_RUNCONFIG'])")
    assert out["stdout"].strip() == "kproj local"


@pytest.mark.slow
def test_pyspark_runconfig_kernel_has_spark_ready(kproject: Path, control_plane, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("LABWORK_HOME", str(control_plane.home))
    monkeypatch.setenv("LABWORK_URL", control_plane.url)
    monkeypatch.setenv("JPY_SESSION_NAME", str(kproject / "spark.ipynb"))
    attach_target(kproject, "spark", "sp", {"master": "local[2]"})
    rc = kproject / ".labwork" / "runconfig" / "sp.toml"
    rc.write_text(rc.read_text() + '\n[spark]\n"spark.driver.memory" = "512m"\n"spark.sql.shuffle.partitions" = "3"\n')
    out = run(LabworkKernelSpecManager(), "labwork-sp",
              "import time; time.sleep(0.5)\n"
              "print(spark.range(10).count(), sc.master, spark.conf.get('spark.sql.shuffle.partitions'), "
              "spark.conf.get('spark.hadoop.fs.permissions.umask-mode'), sc.uiWebUrl)\n"
              # the driver's UI through the control plane, from inside the kernel while it lives
              "import os, urllib.request, urllib.error\n"
              "tok = open(os.environ['LABWORK_HOME'] + '/token').read().strip()\n"
              "url = os.environ['LABWORK_URL'] + '/spark/kernel-' + os.environ['LABWORK_KERNEL_ID'] + '/jobs/'\n"
              "for _ in range(100):\n"
              "    try:\n"
              "        page = urllib.request.urlopen(urllib.request.Request(url, headers={'Authorization': 'Bearer ' + tok})).read().decode()\n"
              "        break\n"
              "    except urllib.error.HTTPError:\n"
              "        page = ''\n"
              "        time.sleep(0.3)\n"
              "print('proxied-ui', '/spark/kernel-' + os.environ['LABWORK_KERNEL_ID'] + '/jobs/' in page)")
    assert out["status"] == "ok", out
    first, proxied_ui = out["stdout"].strip().splitlines()
    assert proxied_ui == "proxied-ui True", out["stdout"]  # the UI's links carry the proxied prefix
    count, master, partitions, umask, ui = first.split()
    assert (count, master, partitions, umask) == ("10", "local[2]", "3", "007")
    assert ui.startswith("http://127.0.0.1:")

    # the launch was recorded with its notebook, and the driver's Spark UI reported for the dashboard
    from labwork.store import Store
    from labwork.store.tables import KernelLaunchRow
    from sqlalchemy import select
    store = Store(f"sqlite:///{control_plane.home / 'labwork.db'}", run_migrations=False)
    import time
    for _ in range(100):  # both reports travel on background threads of the kernel
        with store.session() as s:
            rows = [(r.notebook, r.spark_ui_url) for r in
                    s.scalars(select(KernelLaunchRow).where(KernelLaunchRow.runconfig == "sp")).all()]
        if rows and rows[0][1]:
            break
        time.sleep(0.1)
    store.dispose()
    assert rows == [("spark.ipynb", ui)]
    # ... and where the control plane proxies it (the driver started with that spark.ui.proxyBase)
    store = Store(f"sqlite:///{control_plane.home / 'labwork.db'}", run_migrations=False)
    with store.session() as s:
        launch = s.scalars(select(KernelLaunchRow).where(KernelLaunchRow.runconfig == "sp")).one()
        kernel_id, proxied = launch.kernel_id, launch.spark_ui_proxy
    store.dispose()
    assert proxied == f"/spark/kernel-{kernel_id}"


def test_spark_conf_layers(kproject: Path, labwork_home: Path) -> None:
    attach_target(kproject, "spark", "sp", {"master": "spark://127.0.0.1:7077"})
    p = load_project(kproject)
    server = {"kind": "spark", "spark": {"driver_memory": "2g", "properties": {"spark.a": "1", "spark.b": "1"}}}
    rc = p.runconfigs["sp"].model_copy(update={"spark": {"spark.b": "2"}})
    conf = spark_conf_for(p, rc, server)
    assert conf["spark.master"] == "spark://127.0.0.1:7077"
    assert conf["spark.driver.memory"] == "2g"
    assert (conf["spark.a"], conf["spark.b"]) == ("1", "2")


def test_unprepared_environment_says_which_command_to_run(kproject: Path) -> None:
    (kproject / "requirements.txt").write_text("six\n")
    attach_target(kproject, "local", "venv", {})
    rc = kproject / ".labwork" / "runconfig" / "venv.toml"
    rc.write_text(rc.read_text() + '\n[environment]\nrequirements = "requirements.txt"\n')
    spec = kernel_spec(load_project(kproject), "venv", load_settings())
    assert spec["display_name"] == "kproj venv (not prepared)"
    out = run(LabworkKernelSpecManager(), "labwork-venv", "import six")
    assert out["status"] == "error"
    assert "labwork experiment prepare --runconfig venv" in out["error"]["evalue"]


def test_requirements_outside_the_project_are_refused(kproject: Path) -> None:
    from labwork.errors import ConfigError
    from labwork.kernels.environments import environment_for
    attach_target(kproject, "local", "esc", {})
    rc = kproject / ".labwork" / "runconfig" / "esc.toml"
    rc.write_text(rc.read_text() + '\n[environment]\nrequirements = "../../etc/passwd"\n')
    with pytest.raises(ConfigError, match="outside the project"):
        environment_for(load_project(kproject), "esc", load_settings())


def test_docker_and_remote_targets_never_run_user_code_locally(kproject: Path) -> None:
    """Unprepared, their kernels are the local one that only answers with the prepare command;
    prepared, they name their provisioner (tests/kernels/test_docker_kernels.py and
    test_remote_kernels.py start them for real)."""
    attach_target(kproject, "docker", "box", {"image": "python:3.11"})
    attach_target(kproject, "remote", "gpu", {"host": "gpu1"})
    specs = LabworkKernelSpecManager().get_all_specs()
    assert "labwork-local" in specs
    for name, rc in (("labwork-box", "box"), ("labwork-gpu", "gpu")):
        spec = specs[name]["spec"]
        assert spec["display_name"].endswith("(not prepared)")
        assert "kernel_provisioner" not in spec["metadata"]
        assert f"labwork experiment prepare --runconfig {rc}" in spec["env"]["LABWORK_UNPREPARED"]
