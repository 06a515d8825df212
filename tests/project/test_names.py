"""One name rule (attach's) for every target or run-configuration name from the command line or a
request: `../../x` and `/abs/path` are refused with a clear message and nothing outside is touched."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labwork.errors import ConfigError
from labwork.project import detach_target, init_project, load_project

HOSTILE = ["../../../x/important", "/abs/path", "local\n", "a\x00b", "..", ""]


def _victims(tmp_path: Path) -> list[Path]:
    """Files a hostile name would reach from `<project>/.labwork/compute/`."""
    outside = tmp_path / "x" / "important.toml"
    outside.parent.mkdir(parents=True)
    outside.write_text('type = "local"\n')
    return [outside]


@pytest.mark.parametrize("name", HOSTILE)
def test_library_refuses_names_outside_the_rule(tmp_path: Path, name: str) -> None:
    root = init_project(tmp_path / "a" / "b" / "p").root
    [outside] = _victims(tmp_path)
    with pytest.raises(ConfigError, match="must be 1-64 letters"):
        detach_target(root, name)
    with pytest.raises(ConfigError, match="must be 1-64 letters"):
        load_project(root).runconfig(name)
    assert outside.exists() and (root / ".labwork" / "compute" / "local.toml").exists()


def test_absolute_name_never_deletes(tmp_path: Path) -> None:
    root = init_project(tmp_path / "p").root
    target = tmp_path / "abs.toml"
    target.write_text('type = "local"\n')
    with pytest.raises(ConfigError):
        detach_target(root, str(target.with_suffix("")))
    assert target.exists()


def _cli(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    import os
    return subprocess.run([sys.executable, "-m", "labwork", *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, LABWORK_HOME=str(home)), timeout=120)


def test_cli_detach_and_show_refuse_paths(tmp_path: Path) -> None:
    root = init_project(tmp_path / "a" / "b" / "p").root
    [outside] = _victims(tmp_path)
    for args in (("computetarget", "detach", "../../../x/important"),
                 ("computetarget", "detach", str(outside.with_suffix(""))),
                 ("runconfig", "show", "../../../x/important")):
        out = _cli(*args, cwd=root, home=tmp_path / "home")
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert "must be 1-64 letters" in out.stderr and "Traceback" not in out.stderr + out.stdout
    assert outside.exists()
    assert _cli("computetarget", "detach", "local", cwd=root, home=tmp_path / "home").returncode == 0
