"""Compute › Prepare of a remote run configuration in Chromium: the build's lines (labwork's steps
and pip's own output on the host, as the CLI prints them) appear on the page while the build is
still running, not only at its end.

The run configuration's requirements name a package index that is a small HTTP server of this
test's own, which holds pip's request until the test lets it go: so the page is looked at while
the build is certainly running, with no timing involved."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support import free_port
from tests.support.browser import login, shot
from tests.support.ssh_host import SshHost, ssh_host  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

PACKAGE = "labwork-gated-test-package"


class GatedIndex:
    """A package index whose every answer (404: no such package) waits for `release()`."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.gate = threading.Event()
        gate, asked = self.gate, self.asked

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                asked.append(self.path)
                gate.wait(600)
                self.send_error(404)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/simple/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gated_index() -> Iterator[GatedIndex]:
    index = GatedIndex()
    try:
        yield index
    finally:
        index.close()


def test_remote_prepare_shows_each_line_as_it_happens(cp, page, project, ssh_host: SshHost,  # noqa: F811
                                                      gated_index: GatedIndex) -> None:
    from labwork.project import attach_target
    root = Path(project["path"])
    (root / "requirements.txt").write_text(f"--index-url {gated_index.url}\n{PACKAGE}\n")
    attach_target(root, "remote", "far", {"host": ssh_host.host, "port": ssh_host.port, "user": ssh_host.user,
                                          "key_file": str(ssh_host.key_file),
                                          "known_hosts": str(ssh_host.known_hosts)})
    rc = root / ".labwork" / "runconfig" / "far.toml"
    rc.write_text(rc.read_text() + '\n[environment]\nrequirements = "requirements.txt"\n')
    login(page, cp, f"/projects/{project['id']}/compute")
    page.locator("#runconfigs tr[data-runconfig='far'] button.prepare").click()
    job = page.locator("#job-far")
    lines = job.locator(".progress-lines")
    # pip on the host has asked the gated index: the build is running, and its lines are on the page
    expect(lines).to_contain_text(f"Looking in indexes: {gated_index.url}", timeout=600_000)
    expect(job.locator(".job-state")).to_have_text("running")
    seen = lines.inner_text()
    for step in ("[1/4] creating a virtual environment on 127.0.0.2", "[2/4] installing the kernel",
                 "[3/4] installing requirements.txt"):
        assert step in seen, seen
    assert "Successfully installed" in seen and "ipykernel" in seen  # pip's own lines, not only our steps
    assert gated_index.asked and PACKAGE in gated_index.asked[0]
    shot(page, "compute-prepare-remote-running")
    gated_index.release()
    expect(job.locator(".job-state")).to_contain_text("failed", timeout=300_000)
    expect(lines).to_contain_text(PACKAGE)  # pip's own error names the package it could not find
    expect(page.locator("#runconfigs tr[data-runconfig='far'] .env-state")).to_have_text("not prepared")
