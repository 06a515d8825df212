"""Bad settings reach a person as one line naming the key, the source and what is expected."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _serve(home: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labwork", "serve", *flags],
                          env=dict(os.environ, LABWORK_HOME=str(home)), capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("config, flags, says", [
    ('[gateway]\nidle_timeout = "soon"\n', (), "setting 'gateway.idle_timeout': expected a duration"),
    ('[gateway]\nretain_finished = "later"\n', (), "setting 'gateway.retain_finished': expected a duration"),
    ('[gateway]\nport = 70000\n', (), "setting 'gateway.port': input should be less than or equal to 65535"),
    ('db = "garbage://x"\n', (), "setting 'db': unknown database dialect 'garbage'"),
    ("", ("--port", "-5"), "command-line flags: setting 'port': input should be greater than or equal to 0"),
    ("", ("--host", "999.1.1.1"), "command-line flags: setting 'host': expected an IP address or a host name"),
])
def test_serve_refuses_bad_settings_in_one_line(config: str, flags: tuple[str, ...], says: str,
                                                tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    if config:
        (home / "config.toml").write_text(config)
    proc = _serve(home, *flags)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], proc.stderr
    if config:
        assert str(home / "config.toml") in lines[0]
    assert not (home / "control.json").exists()


def test_config_show_lists_settings_with_source_and_help(tmp_path: Path) -> None:
    import json
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[gateway]\nidle_timeout = "30m"\n')
    proc = subprocess.run([sys.executable, "-m", "labwork", "config", "show", "--json"], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, LABWORK_HOME=str(home), LABWORK_PORT="9100"))
    assert proc.returncode == 0, proc.stderr
    rows = {r["key"]: r for r in json.loads(proc.stdout)["settings"]}
    assert rows["port"]["source"] == "environment (LABWORK_PORT)" and rows["port"]["value"] == 9100
    assert rows["gateway.idle_timeout"]["source"] == str(home / "config.toml")
    assert rows["gateway.idle_timeout"]["help"]
    table = subprocess.run([sys.executable, "-m", "labwork", "config", "show"], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, LABWORK_HOME=str(home)))
    assert table.returncode == 0 and "gateway.idle_timeout" in table.stdout and "default" in table.stdout


def test_serve_names_the_closest_variable_for_a_typo(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.run([sys.executable, "-m", "labwork", "serve"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, LABWORK_HOME=str(home), LABWORK_PROT="9000"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown environment variable LABWORK_PROT; did you mean LABWORK_PORT?" in proc.stderr.splitlines()[0]
    assert not (home / "control.json").exists()
