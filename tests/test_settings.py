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
