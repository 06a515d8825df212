"""docker and remote compute targets: their keys, checked at attach with the field and the reason."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labwork.errors import ConfigError
from labwork.project import attach_target, load_project


def test_docker_target_keys(project_dir: Path) -> None:
    p = attach_target(project_dir, "docker", "docker", {"memory": "2G", "cpus": 1.5,
                                                        "docker_host": "ssh://me@vm", "user": "1000:1000"})
    t = p.targets["docker"]
    assert (t.image, t.memory, t.cpus, t.docker_host, t.user) == ("python:3.11-slim", "2g", 1.5, "ssh://me@vm", "1000:1000")
    assert p.runconfigs["docker"].framework == "python"


@pytest.mark.parametrize(("options", "words"), [
    ({"memory": "lots"}, "memory must be a number"),
    ({"cpus": 0}, "cpus"),
    ({"docker_host": "http://x"}, "docker_host must start with"),
    ({"image": "Bad Image"}, "image must be a Docker image reference"),
    ({"user": "root;rm"}, "user must be uid[:gid]"),
])
def test_bad_docker_keys_are_refused(project_dir: Path, options: dict, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        attach_target(project_dir, "docker", "bad", options)
    assert words in str(err.value.message) and "bad" not in load_project(project_dir).targets


def test_remote_target_host_is_checked(project_dir: Path) -> None:
    with pytest.raises(ConfigError) as err:
        attach_target(project_dir, "remote", "vm", {"host": "-oProxyCommand=x"})
    assert "host must be a host name" in err.value.message
    p = attach_target(project_dir, "remote", "vm", {"host": "10.0.0.5", "known_hosts": "~/kh", "python": "/usr/bin/python3"})
    assert p.targets["vm"].known_hosts == "~/kh" and p.targets["vm"].python == "/usr/bin/python3"


def test_cli_attach_docker_with_limits(project_dir: Path, labwork_home: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "labwork", "computetarget", "attach", "docker", "--name", "box",
                          "--memory", "512m", "--cpus", "1", "--project", str(project_dir)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "'myProj box'" in out.stdout
    t = load_project(project_dir).targets["box"]
    assert t.memory == "512m" and t.cpus == 1.0
    bad = subprocess.run([sys.executable, "-m", "labwork", "computetarget", "attach", "docker", "--name", "b2",
                          "--memory", "much", "--project", str(project_dir)], capture_output=True, text=True)
    assert bad.returncode == 2 and "memory" in bad.stdout + bad.stderr and "Traceback" not in bad.stderr
