from pathlib import Path

import pytest

from labwork.errors import ConfigError
from labwork.settings import load_settings


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(environ={"LABWORK_HOME": str(tmp_path)})
    assert s.home == tmp_path
    assert (s.host, s.port, s.default_hours) == ("127.0.0.1", 8790, 6.0)
    assert s.db_url == f"sqlite:///{tmp_path / 'labwork.db'}"
    assert s.gateway.master == "local[*]"


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('port = 9000\nhost = "127.0.0.2"\n[gateway]\nmaster = "local[2]"\n')
    env = {"LABWORK_HOME": str(tmp_path), "LABWORK_PORT": "9100", "LABWORK_GATEWAY__PORT": "9999"}
    s = load_settings(environ=env)
    assert (s.port, s.host, s.gateway.master, s.gateway.port) == (9100, "127.0.0.2", "local[2]", 9999)
    s = load_settings(flags={"port": 9200, "host": None}, environ=env)
    assert (s.port, s.host) == (9200, "127.0.0.2")


def test_unknown_key_in_file_names_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("prot = 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"LABWORK_HOME": str(tmp_path)})
    assert "unknown setting 'prot'" in err.value.message
    assert err.value.where == str(tmp_path / "config.toml")


def test_bad_value_from_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"LABWORK_HOME": str(tmp_path), "LABWORK_PORT": "eighty"})
    assert "port" in err.value.message and "eighty" in err.value.message
    assert "environment" in err.value.where


def test_bad_toml(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(environ={"LABWORK_HOME": str(tmp_path)})


def test_kernel_context_variables_are_not_settings(tmp_path: Path) -> None:
    s = load_settings(environ={"LABWORK_HOME": str(tmp_path), "LABWORK_HISTORY": "1",
                               "LABWORK_URL": "http://x", "LABWORK_PROJECT_DIR": "/p"})
    assert s.history.max_upload_mb == 100.0


@pytest.mark.parametrize("toml, key, expected", [
    ('[gateway]\nidle_timeout = "soon"\n', "gateway.idle_timeout", "a duration like"),
    ('[gateway]\nretain_finished = "-5m"\n', "gateway.retain_finished", "a duration like"),
    ('[gateway]\nretain_finished = 10\n', "gateway.retain_finished", "a duration like"),
    ('[gateway]\nidle_timeout = "3600"\n', "gateway.idle_timeout", "with a unit"),
    ('default_hours = inf\n', "default_hours", "finite number"),
    ('extend_hours = nan\n', "extend_hours", "finite number"),
    ('[gateway]\nport = 70000\n', "gateway.port", "less than or equal to 65535"),
    ('port = -1\n', "port", "greater than or equal to 0"),
    ('host = "999.1.1.1"\n', "host", "an IP address or a host name"),
    ('host = "bad host"\n', "host", "an IP address or a host name"),
    ('db = "garbage://x"\n', "db", "unknown database dialect 'garbage'"),
    ('db = "not a url"\n', "db", "an SQLAlchemy URL"),
    ('default_hours = -2\n', "default_hours", "greater than 0"),
    ('[gateway]\nmax_sessions = 0\n', "gateway.max_sessions", "greater than or equal to 1"),
    ('[gateway]\ndriver_memory = "lots"\n', "gateway.driver_memory", "a JVM memory size"),
    ('[history]\nmax_upload_mb = -1\n', "history.max_upload_mb", "greater than 0"),
])
def test_bad_values_name_key_source_and_expectation(toml: str, key: str, expected: str, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"LABWORK_HOME": str(tmp_path)})
    assert err.value.where == str(tmp_path / "config.toml")
    assert err.value.message.startswith(f"setting '{key}': ") and expected in err.value.message, err.value.message
    assert "\n" not in err.value.message and "got " in err.value.message


def test_good_values_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('host = "localhost"\nport = 0\ndb = "postgresql+psycopg://u@h/db"\n'
                                          '[gateway]\nidle_timeout = "30m"\nretain_finished = " 90s "\n'
                                          'host = "::1"\ndriver_memory = "2g"\n')
    s = load_settings(environ={"LABWORK_HOME": str(tmp_path)})
    assert (s.host, s.port, s.gateway.host, s.gateway.retain_finished) == ("localhost", 0, "::1", "90s")


def test_every_setting_says_what_it_is_for() -> None:
    from labwork.settings import GatewaySettings, HistorySettings, Settings
    for model in (Settings, GatewaySettings, HistorySettings):
        assert all(f.description for f in model.model_fields.values()), model


def test_the_gateway_parses_durations_with_the_settings_parser() -> None:
    from labwork import units
    from labwork.gateway.protocol import LivyError, parse_duration
    assert parse_duration("10m", "ttl") == units.parse_duration("10m") == 600.0
    with pytest.raises(LivyError, match="ttl: expected a duration like"):
        parse_duration("soon", "ttl")


def test_an_unknown_labwork_variable_names_the_closest(tmp_path: Path) -> None:
    for typo, near in [("LABWORK_PROT", "LABWORK_PORT"), ("LABWORK_GATEWAY__MASTR", "LABWORK_GATEWAY__MASTER"),
                       ("LABWORK_RUNCONFG", "LABWORK_RUNCONFIG")]:
        with pytest.raises(ConfigError) as err:
            load_settings(environ={"LABWORK_HOME": str(tmp_path), typo: "1"})
        assert f"unknown environment variable {typo}; did you mean {near}?" in err.value.message
        assert "environment" in (err.value.where or "")
    with pytest.raises(ConfigError) as far:
        load_settings(environ={"LABWORK_HOME": str(tmp_path), "LABWORK_ZZZZZZZZ": "1"})
    assert far.value.message == "unknown environment variable LABWORK_ZZZZZZZZ"  # nothing is near


def test_every_registered_variable_is_accepted(tmp_path: Path) -> None:
    from labwork import envvars
    environ = {name: "1" for name in envvars.KERNEL_VARIABLES} | {"LABWORK_HOME": str(tmp_path),
                                                                  "LABWORK_TEST_ANYTHING": "x"}
    assert load_settings(environ=environ).home == tmp_path


def test_describe_settings_gives_value_source_and_help(tmp_path: Path) -> None:
    from labwork.settings import describe_settings
    (tmp_path / "config.toml").write_text('[gateway]\nidle_timeout = "30m"\n')
    rows = {r["key"]: r for r in describe_settings(flags={"host": "127.0.0.2"},
                                                    environ={"LABWORK_HOME": str(tmp_path), "LABWORK_PORT": "9100"})}
    assert rows["gateway.idle_timeout"]["value"] == "30m"
    assert rows["gateway.idle_timeout"]["source"] == str(tmp_path / "config.toml")
    assert (rows["port"]["value"], rows["port"]["source"]) == (9100, "environment (LABWORK_PORT)")
    assert (rows["host"]["value"], rows["host"]["source"]) == ("127.0.0.2", "command-line flags")
    assert rows["gateway.master"]["source"] == "default"
    assert rows["gateway.master"]["variable"] == "LABWORK_GATEWAY__MASTER"
    assert all(r["help"] for r in rows.values())


def test_kernel_side_reads_settings_layered_as_the_control_plane_does(tmp_path: Path, monkeypatch) -> None:
    from labwork.history.context import detect
    from labwork.settings import load_settings as load
    (tmp_path / "config.toml").write_text("[history]\nmax_upload_mb = 7\nheartbeat_s = 5\n")
    monkeypatch.setenv("LABWORK_HOME", str(tmp_path))
    monkeypatch.setenv("LABWORK_HISTORY__HEARTBEAT_S", "9")
    ctx = detect()
    settings = load()
    assert ctx.max_upload_mb() == settings.history.max_upload_mb == 7
    assert ctx.history_setting("heartbeat_s", 60.0) == settings.history.heartbeat_s == 9
    assert ctx.history_setting("flush_interval_s", 0.2) == settings.history.flush_interval_s
