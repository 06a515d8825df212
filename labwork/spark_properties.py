"""Spark properties in one place: what the gateway, the kernels and the server configuration share.

The Livy request fields and the Spark properties they stand for, the umask every labwork driver
gets unless told otherwise, the loopback rule for local masters (driver, block manager and UI on
127.0.0.1), JVM memory sizes, and the `spark.labwork.*` tags that tell run history and the
dashboard which project, run configuration, notebook and kernel a Livy session belongs to.
Pure data and functions (no pyspark import), so every layer may use them.
"""
from __future__ import annotations

import re
from typing import Any

# -- the spark.labwork.* tags a session's conf carries -------------------------------------------
TAG_PREFIX = "spark.labwork."
PROJECT_TAG = "spark.labwork.project"             # the project folder (what a server stop deletes)
PROJECT_NAME_TAG = "spark.labwork.project_name"   # what run history lists the runs under
RUNCONFIG_TAG = "spark.labwork.runconfig"
HISTORY_TAG = "spark.labwork.history"             # "true": record statements as run history
NOTEBOOK_TAG = "spark.labwork.notebook"
KERNEL_TAG = "spark.labwork.kernel"
RUN_TAG = "spark.labwork.run"                     # the run the kernel records its cells under
RECORDER_TAG = "spark.labwork.recorder"           # "kernel": the gateway must not record them too
USER_TAG = "spark.labwork.user"                   # who the session runs as (set by the gateway)

# -- Livy request fields <-> Spark properties -----------------------------------------------------
# One value each; `spark_conf_from_livy` writes them, `livy_fields_from_conf` reads them back.
LIVY_VALUE_FIELDS: dict[str, str] = {
    "driverMemory": "spark.driver.memory",
    "driverCores": "spark.driver.cores",
    "executorMemory": "spark.executor.memory",
    "executorCores": "spark.executor.cores",
    "numExecutors": "spark.executor.instances",
    "queue": "spark.yarn.queue",
    "name": "spark.app.name",
}
# Lists, joined with commas.
LIVY_LIST_FIELDS: dict[str, str] = {
    "jars": "spark.jars",
    "pyFiles": "spark.submit.pyFiles",
    "files": "spark.files",
    "archives": "spark.archives",
}
# The resource fields a kernel sends as Livy fields rather than conf (counts are integers).
LIVY_RESOURCE_FIELDS = ("driverMemory", "executorMemory", "driverCores", "executorCores",
                        "numExecutors")
_INT_FIELDS = {"driverCores", "executorCores", "numExecutors"}

# Properties a Livy server decides: a client may not set these...
SERVER_DECIDED = ("spark.master", "spark.submit.deployMode")
# ...and these a kernel drops before it sends its conf to one (where its drivers run).
PLACEMENT_PROPERTIES = ("spark.master", "spark.driver.host", "spark.driver.bindAddress")


def spark_conf_from_livy(fields: dict[str, Any], conf: dict[str, str]) -> dict[str, str]:
    """Livy's fields as Spark properties; the explicit `conf` wins where both are given."""
    out: dict[str, str] = {}
    for name, prop in LIVY_VALUE_FIELDS.items():
        if fields.get(name) is not None:
            out[prop] = str(fields[name])
    for name, prop in LIVY_LIST_FIELDS.items():
        if fields.get(name):
            out[prop] = ",".join(fields[name])
    out.update(conf)
    return out


def livy_fields_from_conf(conf: dict[str, str]) -> dict[str, Any]:
    """Take the resource properties out of `conf` (in place) as Livy fields."""
    fields: dict[str, Any] = {}
    for name in LIVY_RESOURCE_FIELDS:
        prop = LIVY_VALUE_FIELDS[name]
        if prop in conf:
            value = conf.pop(prop)
            fields[name] = int(value) if name in _INT_FIELDS else value
    return fields


# -- the umask default ----------------------------------------------------------------------------
UMASK_PROPERTY = "spark.hadoop.fs.permissions.umask-mode"
UMASK_DEFAULT = "007"  # files a driver writes: the group may read them, others may not


def default_properties() -> dict[str, str]:
    """The free properties every configuration starts with (a given key replaces them)."""
    return {UMASK_PROPERTY: UMASK_DEFAULT}


# -- the loopback rule for local masters ----------------------------------------------------------
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_local(master: str) -> bool:
    return master.startswith("local")


def loopback_conf(master: str) -> dict[str, str]:
    """A local master's driver binds and advertises 127.0.0.1: a laptop's driver stays off the
    network. Empty for cluster masters."""
    if not is_local(master):
        return {}
    return {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}


def ui_bind_env(conf: dict[str, str]) -> dict[str, str]:
    """The environment that keeps the Spark UI where the driver is.

    Spark 4's UI listens on `SPARK_LOCAL_IP` or else on every interface: `spark.driver.bindAddress`
    and `spark.driver.host` do not reach it (org.apache.spark.ui.WebUI). A driver bound to loopback
    gets its UI on loopback too, whatever SPARK_LOCAL_IP the user's shell passed down (so this is
    set, never defaulted).
    """
    bind = conf.get("spark.driver.bindAddress") or conf.get("spark.driver.host")
    return {"SPARK_LOCAL_IP": "127.0.0.1"} if bind in LOOPBACK else {}


# -- JVM memory sizes -----------------------------------------------------------------------------
_JVM_SIZE = re.compile(r"^(\d+)\s*([kmgtp]b?|b)?$", re.IGNORECASE)
_FORM_UNITS = {"k", "kb", "m", "mb", "g", "gb", "t", "tb"}
SIZE_EXPECTED = "a JVM memory size like '512m' or '2g'"


def check_size(value: Any) -> str | None:
    """A JVM memory size as Spark reads it ('512m', '2g', '1024'), stripped; None stays None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _JVM_SIZE.match(value.strip()):
        raise ValueError(f"expected {SIZE_EXPECTED}, got {value!r}")
    return value.strip()


def check_jvm_size(value: Any, what: str) -> str:
    """The stricter form a person types into a configuration: a positive number with a unit
    (k, m, g, t), lower-cased."""
    text = str(value).strip()
    m = _JVM_SIZE.match(text)
    if not m or m.group(1).startswith("0") or m.group(0) != m.group(1) + (m.group(2) or "") or \
            (m.group(2) or "").lower() not in _FORM_UNITS:
        raise ValueError(f"{what} must be a JVM size such as 512m or 2g (a positive number and "
                         f"one of k, m, g, t), got {text!r}")
    return text.lower()


# Where the control plane proxies Spark UIs: /spark/<key>/ (spark.ui.proxyBase of the driver);
# <key> is a gateway driver's folder name or kernel-<kernel id> (labwork/server/spark_proxy.py).
SPARK_UI_ROOT = "/spark"
