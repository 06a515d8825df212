"""Server configurations: validation with clear messages, Spark properties, the properties text."""
from __future__ import annotations

import pytest

from labwork.errors import ConfigError
from labwork.notebooks.config import (MAX_HOURS, ServerConfig, format_properties, parse_config,
                                      parse_properties, spark_conf)


def test_defaults() -> None:
    cfg = ServerConfig()
    assert (cfg.kind, cfg.ui, cfg.hours) == ("python", "lab", 6.0)
    assert cfg.spark.properties == {"spark.hadoop.fs.permissions.umask-mode": "007"}


@pytest.mark.parametrize("hours", [0, -1, -0.5, MAX_HOURS + 1])
def test_bad_hours(hours: float) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"hours": hours})
    assert "hours must be more than 0" in str(info.value)
    assert "--no-limit" in str(info.value)


def test_no_limit_and_max() -> None:
    assert parse_config({"hours": None}).hours is None
    assert parse_config({"hours": MAX_HOURS}).hours == MAX_HOURS


@pytest.mark.parametrize("size", ["1", "1x", "0g", "-1g", "g", "1.5g", ""])
def test_bad_jvm_sizes(size: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"kind": "spark", "spark": {"driver_memory": size}})
    assert "spark.driver_memory" in str(info.value) and "JVM size" in str(info.value)


@pytest.mark.parametrize("size", ["512m", "2g", "2G", "1024k", "1gb", "1t"])
def test_good_jvm_sizes(size: str) -> None:
    assert parse_config({"spark": {"executor_memory": size}}).spark.executor_memory == size.lower()


def test_unknown_keys_and_literals() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        parse_config({"colour": "red"})
    with pytest.raises(ConfigError, match="unknown setting 'spark.drivermemory'"):
        parse_config({"spark": {"drivermemory": "1g"}})
    with pytest.raises(ConfigError, match="'kind'"):
        parse_config({"kind": "R"})


def test_parse_properties() -> None:
    text = "# a comment\n\nspark.sql.shuffle.partitions = 8\nspark.x.y=a=b\n  \n"
    assert parse_properties(text) == {"spark.sql.shuffle.partitions": "8", "spark.x.y": "a=b"}
    with pytest.raises(ConfigError) as info:
        parse_properties("spark.a=1\n# ok\nthis line is wrong\n")
    assert "line 3" in str(info.value) and "this line is wrong" in str(info.value)
    with pytest.raises(ConfigError, match="line 1"):
        parse_properties("=value")


def test_properties_text_in_config_keeps_umask_default() -> None:
    cfg = parse_config({"kind": "spark", "spark": {"properties": "spark.sql.shuffle.partitions=4\n"}})
    assert cfg.spark.properties == {"spark.hadoop.fs.permissions.umask-mode": "007",
                                    "spark.sql.shuffle.partitions": "4"}
    cfg = parse_config({"spark": {"properties": {"spark.hadoop.fs.permissions.umask-mode": "022"}}})
    assert cfg.spark.properties["spark.hadoop.fs.permissions.umask-mode"] == "022"
    assert parse_properties(format_properties(cfg.spark.properties)) == cfg.spark.properties


def test_malformed_properties_text_names_the_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"spark": {"properties": "spark.a=1\nnonsense"}})
    assert "line 2" in str(info.value)


def test_owned_properties_refused() -> None:
    with pytest.raises(ConfigError, match="driver_memory"):
        parse_config({"spark": {"properties": {"spark.driver.memory": "4g"}}})


def test_spark_conf_static_and_dynamic() -> None:
    conf = spark_conf({"kind": "spark", "spark": {"driver_memory": "2g", "executors": 3,
                                                  "properties": {"spark.sql.shuffle.partitions": "8"}}})
    assert conf["spark.driver.memory"] == "2g"
    assert conf["spark.executor.instances"] == "3"
    assert conf["spark.dynamicAllocation.enabled"] == "false"
    assert conf["spark.sql.shuffle.partitions"] == "8"
    assert conf["spark.hadoop.fs.permissions.umask-mode"] == "007"
    dyn = spark_conf({"spark": {"dynamic_allocation": True, "min_executors": 1, "executors": 2,
                                "max_executors": 5}})
    assert dyn["spark.dynamicAllocation.enabled"] == "true"
    assert (dyn["spark.dynamicAllocation.minExecutors"], dyn["spark.dynamicAllocation.maxExecutors"],
            dyn["spark.dynamicAllocation.initialExecutors"]) == ("1", "5", "2")
    assert "spark.executor.instances" not in dyn
    with pytest.raises(ConfigError, match="min_executors"):
        parse_config({"spark": {"dynamic_allocation": True, "min_executors": 6, "max_executors": 5}})


def test_same_runtime_ignores_hours() -> None:
    assert parse_config({"hours": 1}).same_runtime(parse_config({"hours": None}))
    assert not parse_config({}).same_runtime(parse_config({"ui": "classic"}))
