"""`labwork gateway serve` is secure by default (issue 8, item 7): a token (printed, 0600), Livy's
X-Requested-By check, cross-site refusal; the real `livy` and sparkmagic clients work given it."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import httpx
import pytest
import requests
from tests.support import free_port


class Standalone:
    def __init__(self, tmp_path: Path, *extra: str) -> None:
        self.home = tmp_path / "home"
        self.home.mkdir(exist_ok=True)
        (self.home / "config.toml").write_text('[gateway]\ndriver_memory = "512m"\n')
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, LABWORK_HOME=str(self.home))
        self.log = tmp_path / f"serve-{self.port}.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "labwork", "gateway", "serve", "--port",
                                      str(self.port), "--master", "local[2]", *extra],
                                     env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url + "/version", timeout=2)
                break
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.2)

    @property
    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def standalone(tmp_path: Path):
    gw = Standalone(tmp_path)
    yield gw
    gw.stop()


def test_standalone_gateway_requires_its_token_and_x_requested_by(standalone: Standalone) -> None:
    url = standalone.url
    token_file = standalone.home / "gateway-standalone" / "token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert f"token required: {token}" in standalone.output
    for method, path in (("GET", "/sessions"), ("GET", "/version"), ("POST", "/sessions")):
        r = httpx.request(method, url + path, json={"kind": "pyspark"} if method == "POST" else None)
        assert r.status_code == 401 and "token" in r.json()["msg"], (method, path)
    assert httpx.get(url + "/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(url + "/sessions", headers=bearer).json()["total"] == 0
    assert httpx.get(url + "/sessions", auth=("anyone", token)).status_code == 200
    r = httpx.post(url + "/sessions", headers=bearer, json={"kind": "pyspark"})
    assert r.status_code == 400 and "CSRF" in r.json()["msg"]
    csrf = {**bearer, "X-Requested-By": "me"}
    r = httpx.post(url + "/sessions", headers={**csrf, "Content-Type": "text/plain"},
                   content=b'{"kind":"pyspark"}')
    assert r.status_code == 415 and "application/json" in r.json()["msg"]
    r = httpx.post(url + "/sessions", headers={**csrf, "Origin": "http://127.0.0.1:8888"},
                   json={"kind": "pyspark"})
    assert r.status_code == 403 and "another site" in r.json()["msg"]
    assert httpx.get(url + "/sessions", headers=bearer).json()["total"] == 0
    # the CLI, given the token
    cli = [sys.executable, "-m", "labwork", "spark", "sessions", "--url", url, "--json"]
    denied = subprocess.run(cli, env=standalone.env, capture_output=True, text=True, timeout=60)
    assert denied.returncode != 0 and "token" in denied.stderr
    ok = subprocess.run(cli, env=dict(standalone.env, LABWORK_GATEWAY_PASSWORD=token),
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and json.loads(ok.stdout) == [], ok.stderr


@pytest.mark.slow
def test_livy_and_sparkmagic_clients_work_with_the_token(standalone: Standalone) -> None:
    from livy import LivySession, SessionKind
    from sparkmagic.auth.basic import Basic
    from sparkmagic.livyclientlib.endpoint import Endpoint
    from sparkmagic.livyclientlib.livyreliablehttpclient import LivyReliableHttpClient
    from sparkmagic.utils import configuration as conf

    token = (standalone.home / "gateway-standalone" / "token").read_text().strip()
    http = requests.Session()
    http.headers["X-Requested-By"] = "livy-client"  # what Livy's CSRF check asks of its clients
    with LivySession.create(standalone.url, kind=SessionKind.PYSPARK, auth=("ada", token),
                            requests_session=http, driver_memory="512m", echo=False) as session:
        out = session.run("x = 6 * 7\nprint(x)")
        assert out.text.strip() == "42"
        # sparkmagic's own HTTP client, with the header labwork's kernels configure
        conf.override(conf.custom_headers.__name__, {"X-Requested-By": "labwork"})
        request_headers = conf.custom_headers()
        endpoint = Endpoint(standalone.url, Basic(Namespace(user="ada", password=token, url=standalone.url)))
        client = LivyReliableHttpClient.from_endpoint(endpoint)
        assert any(s["id"] == session.session_id for s in client.get_sessions()["sessions"])
        st = client.post_statement(session.session_id, {"code": "print(x + 1)", "kind": "pyspark"})
        deadline = time.monotonic() + 120
        while st["state"] in ("waiting", "running"):
            assert time.monotonic() < deadline, st
            time.sleep(0.1)
            st = client.get_statement(session.session_id, st["id"])
        assert st["output"]["data"]["text/plain"].strip() == "43", st
        conf.override(conf.custom_headers.__name__, {})
        assert request_headers == {"X-Requested-By": "labwork"}


def test_no_auth_only_when_asked_with_a_warning(tmp_path: Path) -> None:
    gw = Standalone(tmp_path, "--no-auth")
    try:
        assert "WARNING: --no-auth" in gw.output
        assert not (gw.home / "gateway-standalone" / "token").exists()
        assert httpx.get(gw.url + "/sessions").json()["total"] == 0
        # still Livy's CSRF header check and the cross-site refusal
        assert httpx.post(gw.url + "/sessions", json={"kind": "pyspark"}).status_code == 400
        r = httpx.post(gw.url + "/sessions", json={"kind": "pyspark"},
                       headers={"X-Requested-By": "x", "Origin": "http://evil.example"})
        assert r.status_code == 403
    finally:
        gw.stop()
