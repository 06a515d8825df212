"""A Jupyter server's configuration: Python or Spark, UI, time limit, idle timeout, Spark resources
and properties.

The configuration is recorded with each server (`ServerRow.config`) and with each kernel launch, and
passed to the server's kernels as JSON in `LABWORK_SERVER_CONFIG`. Kernels turn it into Spark
properties with `spark_conf(config)`.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labwork import units
from labwork.errors import ConfigError
from labwork.spark_properties import check_jvm_size, default_properties

MAX_HOURS = 24 * 30  # a server may be given at most 30 days at a time
_PROPERTY_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-\[\]:/]*$")

# Spark properties the structured fields own: setting them as free properties is refused.
_OWNED = {
    "spark.driver.memory": "driver_memory", "spark.driver.cores": "driver_cores",
    "spark.executor.memory": "executor_memory", "spark.executor.cores": "executor_cores",
    "spark.executor.instances": "executors", "spark.dynamicAllocation.enabled": "dynamic_allocation",
    "spark.dynamicAllocation.minExecutors": "min_executors",
    "spark.dynamicAllocation.maxExecutors": "max_executors",
    "spark.dynamicAllocation.initialExecutors": "executors",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SparkConfig(_Strict):
    """Resources and properties for the Spark drivers the server's kernels start."""

    driver_memory: str = "1g"
    driver_cores: int = Field(1, ge=1, le=64)
    executor_memory: str = "1g"
    executor_cores: int = Field(1, ge=1, le=64)
    executors: int = Field(1, ge=0, le=1000)
    dynamic_allocation: bool = False
    min_executors: int = Field(0, ge=0, le=1000)
    max_executors: int = Field(4, ge=1, le=1000)
    properties: dict[str, str] = Field(default_factory=default_properties)

    @field_validator("driver_memory")
    @classmethod
    def _driver_memory(cls, v: str) -> str:
        return check_jvm_size(v, "driver memory")

    @field_validator("executor_memory")
    @classmethod
    def _executor_memory(cls, v: str) -> str:
        return check_jvm_size(v, "executor memory")

    @field_validator("properties", mode="before")
    @classmethod
    def _properties(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = parse_properties(v)
        if not isinstance(v, dict):
            return v
        out = default_properties()  # the umask default stays unless the key is given
        for key, value in v.items():
            key = str(key).strip()
            if not _PROPERTY_KEY.match(key):
                raise ValueError(f"Spark property name {key!r} is not valid (letters, digits, '.', '_', '-')")
            if key in _OWNED:
                raise ValueError(f"set {key} with the '{_OWNED[key]}' setting, not as a property")
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    @model_validator(mode="after")
    def _allocation(self) -> "SparkConfig":
        if self.dynamic_allocation:
            if self.min_executors > self.max_executors:
                raise ValueError(f"min_executors ({self.min_executors}) is more than max_executors "
                                 f"({self.max_executors})")
            if not self.min_executors <= self.executors <= self.max_executors:
                raise ValueError(f"with dynamic allocation, executors (the initial count, {self.executors}) "
                                 f"must be between min_executors ({self.min_executors}) and "
                                 f"max_executors ({self.max_executors})")
        return self


# Fields of a server's lifetime, not of what it runs: a server differing only in them is the same runtime.
LIFETIME_FIELDS = {"hours", "idle"}


class ServerConfig(_Strict):
    """What a project's Jupyter server runs with. `hours=None` means no time limit; `idle` is the
    idle timeout in seconds (given as '1h', '30m' or seconds; None, the default, means never)."""

    kind: Literal["python", "spark"] = "python"
    ui: Literal["lab", "classic"] = "lab"
    hours: float | None = 6.0
    idle: float | None = None
    spark: SparkConfig = Field(default_factory=SparkConfig)

    @field_validator("idle", mode="before")
    @classmethod
    def _idle(cls, v: Any) -> float | None:
        seconds = units.parse_timeout(v)
        if seconds is not None and seconds > MAX_HOURS * 3600:
            raise ValueError(f"expected at most {MAX_HOURS} h (30 days), got {v!r}")
        return seconds

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: float | None) -> float | None:
        if v is None:
            return None
        if not v > 0 or v > MAX_HOURS:
            raise ValueError(f"hours must be more than 0 and at most {MAX_HOURS} (30 days), got {v:g}; "
                             "for a server that never stops, use no limit (--no-limit, hours = null)")
        return float(v)

    def same_runtime(self, other: "ServerConfig") -> bool:
        """Equal apart from the time limit and the idle timeout (`extend` changes the first without
        a restart; neither changes what the server runs)."""
        return self.model_dump(exclude=LIFETIME_FIELDS) == other.model_dump(exclude=LIFETIME_FIELDS)


def describe_error(exc: ValidationError, where: str = "server configuration") -> ConfigError:
    """The first problem of a pydantic failure as `key: message`."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        msg = f"unknown setting '{key}'"
    elif err["type"] == "literal_error":
        msg = f"'{key}': {err['msg'].lower()}, got {err.get('input')!r}"
    else:
        text = err["msg"].removeprefix("Value error, ")
        msg = f"'{key}': {text}" if key else text
        if err["type"] not in ("value_error",) and "input" in err:
            msg += f" (got {err['input']!r})"
    return ConfigError(msg, where=where, details={"key": key})


def parse_config(data: ServerConfig | dict[str, Any] | None) -> ServerConfig:
    """Validate a configuration given as a dict (API body, CLI) into a `ServerConfig`."""
    if isinstance(data, ServerConfig):
        return data
    try:
        return ServerConfig.model_validate(data or {})
    except ValidationError as exc:
        raise describe_error(exc) from exc


def parse_properties(text: str) -> dict[str, str]:
    """`key=value` lines (blank lines and `#` comments allowed) into a dict; later lines win."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not _PROPERTY_KEY.match(key):
            raise ConfigError(f"line {number}: expected key=value, got {raw.strip()!r}",
                              where="Spark properties", details={"line": number, "content": raw})
        out[key] = value
    return out


def format_properties(props: dict[str, str]) -> str:
    """The inverse of `parse_properties` (for the dashboard's text box)."""
    return "".join(f"{k}={v}\n" for k, v in props.items())


def spark_conf(config: ServerConfig | dict[str, Any]) -> dict[str, str]:
    """The server configuration as Spark properties (free properties last)."""
    spark = parse_config(config).spark
    conf = {
        "spark.driver.memory": spark.driver_memory,
        "spark.driver.cores": str(spark.driver_cores),
        "spark.executor.memory": spark.executor_memory,
        "spark.executor.cores": str(spark.executor_cores),
    }
    if spark.dynamic_allocation:
        conf |= {
            "spark.dynamicAllocation.enabled": "true",
            "spark.dynamicAllocation.shuffleTracking.enabled": "true",
            "spark.dynamicAllocation.minExecutors": str(spark.min_executors),
            "spark.dynamicAllocation.maxExecutors": str(spark.max_executors),
            "spark.dynamicAllocation.initialExecutors": str(spark.executors),
        }
    else:
        conf |= {"spark.dynamicAllocation.enabled": "false",
                 "spark.executor.instances": str(spark.executors)}
    conf |= spark.properties
    return conf
