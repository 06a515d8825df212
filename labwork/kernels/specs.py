"""Kernel specs made from a project's run configurations, one per run configuration.

Pure functions from (project, settings, server configuration) to kernel.json-style dicts, so the
Jupyter `KernelSpecManager` subclass, the CLI and tests share them.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from labwork import envvars
from labwork.kernels.environments import environment_for, labwork_shim
from labwork.project.files import Project
from labwork.project.models import LivyTarget, RunConfig, SparkTarget
from labwork.settings import Settings
from labwork.spark_properties import (SPARK_UI_ROOT, HISTORY_TAG, PLACEMENT_PROPERTIES, PROJECT_NAME_TAG, PROJECT_TAG,
                                      RUNCONFIG_TAG, default_properties, livy_fields_from_conf,
                                      loopback_conf)

PREFIX = "labwork-"
RESOURCES = Path(__file__).parent / "resources"


def kernel_name(rc_name: str) -> str:
    return PREFIX + rc_name.lower()


def server_spark_conf(server_config: dict[str, Any] | None) -> dict[str, str]:
    """Spark properties from the Jupyter server's configuration (resources + extra properties)."""
    if not server_config:
        return default_properties()
    from labwork.notebooks.config import ServerConfig, spark_conf
    return spark_conf(ServerConfig.model_validate(server_config))


def spark_conf_for(project: Project, rc: RunConfig, server_config: dict[str, Any] | None) -> dict[str, str]:
    """Server configuration, then the run configuration's `[spark]`, then the target's master."""
    conf = default_properties() | server_spark_conf(server_config) | dict(rc.spark)
    target = project.target_of(rc)
    conf["spark.master"] = target.kernel_master if isinstance(target, SparkTarget) else conf.get("spark.master", "local[*]")
    conf.setdefault("spark.app.name", f"{project.name} {rc.target}")
    conf.setdefault("spark.ui.showConsoleProgress", "false")
    for key, value in loopback_conf(conf["spark.master"]).items():  # a laptop's driver stays off the network
        conf.setdefault(key, value)
    return conf


def _uses_livy(project: Project, rc: RunConfig) -> bool:
    """Scala always goes through Livy (no Scala kernel in-process); PySpark when the target says."""
    target = project.target_of(rc)
    if rc.framework == "spark":
        return True
    return rc.framework == "pyspark" and (
        isinstance(target, LivyTarget) or (isinstance(target, SparkTarget) and target.via == "livy"))


REMOTE_KINDS = ("docker", "remote")


def kernel_spec(project: Project, rc_name: str, settings: Settings,
                server_config: dict[str, Any] | None = None, control_url: str | None = None) -> dict[str, Any]:
    """kernel.json for one run configuration."""
    rc = project.runconfig(rc_name)
    display = f"{project.name} {rc_name}"
    base_env = {
        "LABWORK_HOME": str(settings.home),
        "LABWORK_PROJECT_DIR": str(project.root),
        "LABWORK_PROJECT": project.name,
        "LABWORK_RUNCONFIG": rc_name,
        "LABWORK_HISTORY": "1" if rc.history else "0",
    }
    if control_url:
        base_env["LABWORK_URL"] = control_url
    if _uses_livy(project, rc):
        return _sparkmagic_spec(project, rc_name, rc, settings, server_config, control_url, display, base_env)
    launch_env = dict(base_env) | dict(rc.env)
    launch_env["LABWORK_FRAMEWORK"] = rc.framework
    if rc.framework in ("pyspark", "spark"):
        launch_env["LABWORK_SPARK_CONF"] = json.dumps(spark_conf_for(project, rc, server_config))
    kind = project.target_of(rc).type
    if kind in REMOTE_KINDS:
        from labwork.kernels import remote_specs
        make = remote_specs.docker_kernel_spec if kind == "docker" else remote_specs.remote_kernel_spec
        return make(project, rc_name, settings, display, launch_env)
    if rc.framework == "pyspark" and control_url:  # a local driver: its UI behind the control plane
        launch_env[envvars.SPARK_UI_ROOT] = SPARK_UI_ROOT
    env = environment_for(project, rc_name, settings)
    python = env.python
    if not env.prepared:
        python = sys.executable
        launch_env["LABWORK_UNPREPARED"] = (
            f"The environment of run configuration '{rc_name}' is not prepared. "
            f"Run: labwork experiment prepare --runconfig {rc_name}  (in {project.root})")
    elif not env.is_current:
        launch_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(labwork_shim(settings)), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "argv": [python, "-m", "labwork.kernels.launch", "-f", "{connection_file}"],
        "display_name": display if env.prepared else f"{display} (not prepared)",
        "language": "python",
        "interrupt_mode": "signal",
        "env": launch_env,
        "metadata": {"labwork": {"project": str(project.root), "runconfig": rc_name,
                                 "framework": rc.framework, "target": rc.target,
                                 "prepared": env.prepared, "memory_limit": rc.resources.memory_bytes},
                     "kernel_provisioner": local_provisioner(rc_name, rc, settings),
                     "debugger": True},
    }


def local_provisioner(rc_name: str, rc: RunConfig, settings: Settings) -> dict[str, Any]:
    """labwork.kernels.local_provisioner with the run configuration's memory limit."""
    return {"provisioner_name": "labwork-local",
            "config": {"runconfig": rc_name, "memory_limit": rc.resources.memory_bytes,
                       "enforce": settings.kernel_memory_limits}}


def _sparkmagic_spec(project: Project, rc_name: str, rc: RunConfig, settings: Settings,
                     server_config: dict[str, Any] | None, control_url: str | None, display: str,
                     base_env: dict[str, str]) -> dict[str, Any]:
    from labwork.gateway.sparkmagic_kernels import sparkmagic_kernel_spec

    target = project.target_of(rc)
    conf = spark_conf_for(project, rc, server_config)
    for key in PLACEMENT_PROPERTIES:
        conf.pop(key, None)  # the Livy server decides where its drivers run
    conf[PROJECT_TAG] = str(project.root)
    conf[PROJECT_NAME_TAG] = project.name
    conf[RUNCONFIG_TAG] = rc_name
    conf[HISTORY_TAG] = "true" if rc.history else "false"
    session_conf: dict[str, Any] = {"conf": conf}
    session_conf.update(livy_fields_from_conf(conf))
    if isinstance(target, LivyTarget):
        url = target.url
        auth = {"none": "None", "basic": "Basic_Access", "kerberos": "Kerberos"}[target.auth]
        username = target.username
        password = os.environ.get(target.password_env or "", "") or None
    else:
        from labwork.gateway.sparkmagic_kernels import TOKEN_AUTH
        url = (control_url or os.environ.get("LABWORK_URL") or f"http://127.0.0.1:{settings.port}") + "/livy"
        # the kernel's own LABWORK_TOKEN (the personal token of the user whose server it is), sent
        # by labwork.gateway.sparkmagic_auth; never the shared LABWORK_HOME/token in a file
        auth, username, password = TOKEN_AUTH, None, None
    conf_dir = settings.home / "kernels" / _slug(project) / rc_name
    spec = sparkmagic_kernel_spec(display_name=display, language="scala" if rc.framework == "spark" else "python",
                                  conf_dir=conf_dir, livy_url=url, auth=auth, username=username,
                                  password=password, session_conf=session_conf, project=str(project.root),
                                  master=target.master if isinstance(target, SparkTarget) else None)
    module = spec["argv"][2]  # [python, -m, <sparkmagic kernel module>, -f, {connection_file}]
    spec["argv"] = [sys.executable, "-m", "labwork.kernels.sparkmagic_launch", "--module", module,
                    "-f", "{connection_file}"]
    spec.setdefault("env", {}).update(base_env)
    spec.setdefault("metadata", {})["labwork"] = {"project": str(project.root), "runconfig": rc_name,
                                                  "framework": rc.framework, "target": rc.target,
                                                  "prepared": True, "livy": url}
    return spec


def _slug(project: Project) -> str:
    import hashlib
    return hashlib.sha1(str(project.root).encode()).hexdigest()[:12]


def project_kernel_specs(project: Project, settings: Settings, server_config: dict[str, Any] | None = None,
                         control_url: str | None = None) -> dict[str, dict[str, Any]]:
    """Every run configuration's spec; one that cannot be made is skipped, never the rest."""
    out: dict[str, dict[str, Any]] = {}
    for rc_name in sorted(project.runconfigs):
        try:
            out[kernel_name(rc_name)] = kernel_spec(project, rc_name, settings, server_config, control_url)
        except Exception as exc:  # a broken run configuration must not hide the others
            project.problems.append(exc if hasattr(exc, "message") else _as_error(exc, project, rc_name))
    return out


def _as_error(exc: Exception, project: Project, rc_name: str):  # noqa: ANN202
    from labwork.errors import ConfigError
    return ConfigError(f"cannot make a kernel: {exc}", where=str(project.config_dir / "runconfig" / f"{rc_name}.toml"),
                       details={"name": rc_name})
