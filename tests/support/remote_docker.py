"""A "remote" Docker host for the tests: an sshd on 127.0.0.2 whose sessions find the test dockerd.

Docker's `ssh://` connection runs `docker system dial-stdio` on the host; there the `docker`
client finds its daemon through DOCKER_HOST, which this sshd puts into every session's
environment (sshd_config `SetEnv`), as a host's login environment would. The daemon is the
session's test dockerd (tests/support/docker_host.py), so the host is this machine reached only
through SSH.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.docker_host import DockerHost
from tests.support.ssh_host import SshHost, start_sshd, stop_sshd


def docker_url(h: SshHost) -> str:
    return f"ssh://{h.user}@{h.host}:{h.port}"


@pytest.fixture(scope="session")
def docker_ssh_host(docker_host: DockerHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHost]:
    """An sshd on 127.0.0.2 whose logins reach the test dockerd with a plain `docker`."""
    host = start_sshd(tmp_path_factory.mktemp("sshd-docker"), set_env={"DOCKER_HOST": docker_host.url})
    try:
        yield host
    finally:
        stop_sshd(host)
