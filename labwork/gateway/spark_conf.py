"""The Spark configuration of the gateway's drivers and batches: their properties and environment.

Server settings first (`[gateway]`: master, resources), the request's fields and `conf` over them;
the loopback rule for local masters and the property table come from `labwork.spark_properties`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from labwork.gateway.protocol import CreateRequest
from labwork.settings import GatewaySettings
from labwork.spark_properties import loopback_conf, ui_bind_env

# What a session's driver must not inherit from the gateway's environment.
_NOT_INHERITED = ("PYSPARK_DRIVER_PYTHON", "PYSPARK_DRIVER_PYTHON_OPTS", "PYSPARK_SUBMIT_ARGS",
                  "JPY_PARENT_PID", "LABWORK_TOKEN")


class DriverConfig:
    """Properties and environment for the drivers and spark-submit runs of one gateway."""

    def __init__(self, settings: GatewaySettings, state_dir: Path) -> None:
        self.settings = settings
        self.state_dir = Path(state_dir)
        # Where the control plane proxies the drivers' Spark UIs ("/spark"), when it mounts this
        # gateway: each driver's UI is at <root>/<its folder's name>/ (spark.ui.proxyBase).
        self.ui_proxy_root = ""

    @property
    def master(self) -> str:
        return self.settings.master

    def env(self) -> dict[str, str]:
        """The gateway's environment, cleaned for a driver (Python, plotting, IPython folder)."""
        env = dict(os.environ)
        for key in _NOT_INHERITED:
            env.pop(key, None)
        env["PYSPARK_PYTHON"] = env.get("PYSPARK_PYTHON") or sys.executable
        env["MPLBACKEND"] = "Agg"
        env["PYTHONUNBUFFERED"] = "1"
        env["IPYTHONDIR"] = str(self.state_dir / "ipython")
        # the UI on loopback like the driver (set, not defaulted: a shell's 0.0.0.0 would open
        # the UI to the net)
        env.update(ui_bind_env(loopback_conf(self.master)))
        return env

    def conf(self, req: CreateRequest | None, kind: str, *, for_batch: bool = False,
             driver_dir: Path | None = None) -> dict[str, str]:
        """A driver's Spark properties: the settings' resources, its own folders, the request."""
        s = self.settings
        conf: dict[str, str] = {
            "spark.driver.memory": s.driver_memory,
            "spark.driver.cores": str(s.driver_cores),
            "spark.executor.memory": s.executor_memory,
            "spark.executor.cores": str(s.executor_cores),
            "spark.ui.showConsoleProgress": "false",
        }
        if not for_batch:
            conf["spark.master"] = s.master
            conf["spark.ui.port"] = "0"
            conf["spark.app.name"] = "livy-session"
            if driver_dir is not None:
                conf["spark.sql.warehouse.dir"] = str(driver_dir / "spark-warehouse")
                conf["spark.driver.extraJavaOptions"] = (
                    f"-Dderby.system.home={driver_dir} -Djava.io.tmpdir={driver_dir / 'tmp'}")
                if kind in ("spark", "shared"):
                    conf["spark.repl.class.outputDir"] = str(driver_dir / "repl-classes")

        conf.update(loopback_conf(s.master))
        if req is not None:
            conf.update(req.spark_conf())
        if not for_batch and driver_dir is not None and self.ui_proxy_root:
            # the UI's links under the proxied prefix (after the request's: it is not theirs to move)
            conf["spark.ui.proxyBase"] = f"{self.ui_proxy_root}/{driver_dir.name}"
        return conf

    def batch_conf(self, req: CreateRequest) -> dict[str, str]:
        """spark-submit's `--conf`s for a batch (its master is spark-submit's `--master`)."""
        return self.conf(req, kind="pyspark", for_batch=True)
