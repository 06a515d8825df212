"""Makes `spark` and `sc` in a PySpark run configuration's kernel, before the first cell."""
from __future__ import annotations

import json
import os
from typing import Any

from labwork import envvars


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def ui_bind_env(conf: dict[str, str]) -> dict[str, str]:
    """The environment that keeps the Spark UI where the driver is.

    Spark 4's UI listens on `SPARK_LOCAL_IP` or else on every interface: `spark.driver.bindAddress`
    and `spark.driver.host` do not reach it (org.apache.spark.ui.WebUI). A driver bound to loopback
    gets its UI on loopback too, whatever SPARK_LOCAL_IP the user's shell passed down.
    """
    bind = conf.get("spark.driver.bindAddress") or conf.get("spark.driver.host")
    return {"SPARK_LOCAL_IP": "127.0.0.1"} if bind in LOOPBACK else {}


def start_spark(conf: dict[str, str] | None = None) -> tuple[Any, Any]:
    """A SparkSession with master and properties from the target and the server configuration."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ImportError("pyspark is not installed in this run configuration's environment; "
                          "add it to the requirements or install labwork[spark]") from exc
    conf = conf if conf is not None else json.loads(envvars.get(envvars.SPARK_CONF) or "{}")
    os.environ.update(ui_bind_env(conf))  # read by the JVM that getOrCreate launches
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel("WARN")
    kernel_id = envvars.get(envvars.KERNEL_ID)
    if kernel_id and sc.uiWebUrl:  # the dashboard links each kernel to its Spark UI
        from labwork.kernels.launch import post_to_control_plane
        post_to_control_plane(f"/api/kernels/{kernel_id}/spark", {"spark_ui_url": sc.uiWebUrl}, attempts=3,
                              name="labwork-spark-ui")
    return spark, sc
