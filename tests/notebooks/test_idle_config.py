"""The idle timeout as a value: one parser (labwork.units), the server configuration's field, the
`[idle]` settings and the kernel-culling options they give Jupyter's command line."""
from __future__ import annotations

import pytest

from labwork import units
from labwork.errors import ConfigError
from labwork.notebooks.config import ServerConfig, parse_config
from labwork.notebooks.idle import culling_options
from labwork.settings import load_settings


@pytest.mark.parametrize("value, seconds", [
    ("1h", 3600.0), ("30m", 1800.0), ("90 s", 90.0), ("1.5h", 5400.0), ("2 days", 172800.0),
    (45, 45.0), (2.5, 2.5), (None, None), ("", None), ("off", None), (" Never ", None),
])
def test_parse_timeout(value, seconds) -> None:
    assert units.parse_timeout(value) == seconds


@pytest.mark.parametrize("value", ["soon", "60", "1x", "-5m", "0s", 0, -1, True, float("nan")])
def test_parse_timeout_refuses(value) -> None:
    with pytest.raises(ValueError, match="expected a duration with its unit"):
        units.parse_timeout(value)


@pytest.mark.parametrize("seconds, text", [(3600, "1 h"), (5400, "90 min"), (60, "1 min"), (45, "45 s"),
                                           (1.5, "1.5 s"), (7200.0, "2 h")])
def test_format_seconds_reads_back(seconds, text) -> None:
    assert units.format_seconds(seconds) == text
    assert units.parse_timeout(text) == seconds  # the dashboard shows it so, and reads it back


def test_server_config_keeps_the_idle_timeout_in_seconds() -> None:
    cfg = parse_config({"idle": "1h"})
    assert cfg.idle == 3600.0
    assert parse_config(cfg.model_dump(mode="json")).idle == 3600.0  # the row's JSON reads back
    assert ServerConfig().idle is None  # off by default
    # like the time limit, the idle timeout is not what a server runs: no restart needed to reuse it
    assert cfg.same_runtime(parse_config({"idle": None, "hours": 2}))
    assert not cfg.same_runtime(parse_config({"idle": "1h", "kind": "spark"}))


@pytest.mark.parametrize("value", ["soon", "60", -3, "31d"])
def test_server_config_names_the_idle_field(value) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"idle": value})
    assert info.value.details["key"] == "idle" and info.value.message.startswith("'idle': expected")


def test_culling_options_are_jupyter_servers_own(tmp_path) -> None:
    s = load_settings(flags={"home": tmp_path}, environ={})
    assert s.idle.busy_ceiling == "24h"
    assert culling_options(s.idle) == ["--MappingKernelManager.cull_idle_timeout=10800",
                                       "--MappingKernelManager.cull_interval=300",
                                       "--MappingKernelManager.cull_connected=False",
                                       "--MappingKernelManager.cull_busy=False"]
    s = load_settings(flags={"home": tmp_path}, environ={
        "LABWORK_IDLE__CULL_KERNELS_AFTER": "2.5s", "LABWORK_IDLE__CULL_INTERVAL": "1s",
        "LABWORK_IDLE__CULL_CONNECTED": "true"})
    assert culling_options(s.idle)[:3] == ["--MappingKernelManager.cull_idle_timeout=3",
                                           "--MappingKernelManager.cull_interval=1",
                                           "--MappingKernelManager.cull_connected=True"]
    s = load_settings(flags={"home": tmp_path}, environ={"LABWORK_IDLE__CULL_KERNELS_AFTER": "0s"})
    assert culling_options(s.idle) == []  # culling off


def test_idle_settings_say_what_is_wrong(tmp_path) -> None:
    with pytest.raises(ConfigError, match="setting 'idle.busy_ceiling'"):
        load_settings(flags={"home": tmp_path}, environ={"LABWORK_IDLE__BUSY_CEILING": "24"})
    with pytest.raises(ConfigError, match="did you mean LABWORK_IDLE__BUSY_CEILING"):
        load_settings(flags={"home": tmp_path}, environ={"LABWORK_IDLE__BUSY_CEILIN": "1h"})
