"""Makes `spark` and `sc` in a PySpark run configuration's kernel, before the first cell."""
from __future__ import annotations

import json
import os
from typing import Any

from labwork import envvars
from labwork.spark_properties import ui_bind_env


def start_spark(conf: dict[str, str] | None = None) -> tuple[Any, Any]:
    """A SparkSession with master and properties from the target and the server configuration."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ImportError("pyspark is not installed in this run configuration's environment; "
                          "add it to the requirements or install labwork[spark]") from exc
    conf = conf if conf is not None else json.loads(envvars.get(envvars.SPARK_CONF) or "{}")
    kernel_id = envvars.get(envvars.KERNEL_ID)
    ui_root = envvars.get(envvars.SPARK_UI_ROOT)
    proxied = f"{ui_root}/kernel-{kernel_id}" if ui_root and kernel_id else None
    if proxied and "spark.ui.proxyBase" not in conf:  # the UI's links under the control plane's path
        conf = {**conf, "spark.ui.proxyBase": proxied}
    os.environ.update(ui_bind_env(conf))  # read by the JVM that getOrCreate launches
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel("WARN")
    if kernel_id and sc.uiWebUrl:  # the dashboard links each kernel to its Spark UI
        from labwork.kernels.launch import post_to_control_plane
        body = {"spark_ui_url": sc.uiWebUrl}
        if proxied and conf.get("spark.ui.proxyBase") == proxied:
            body["proxy_path"] = proxied
        post_to_control_plane(f"/api/kernels/{kernel_id}/spark", body, attempts=3, name="labwork-spark-ui")
    return spark, sc
