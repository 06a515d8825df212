"""The control plane as a user meets it: `labwork serve`, its token, the CLI finding it."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import ControlPlane


def test_status_requires_token(control_plane: ControlPlane) -> None:
    assert httpx.get(control_plane.url + "/api/status").status_code == 401
    assert httpx.get(control_plane.url + "/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = httpx.get(control_plane.url + "/api/status", headers=control_plane.headers())
    assert r.status_code == 200 and r.json()["ok"] is True
    assert httpx.get(control_plane.url + f"/api/status?token={control_plane.token}").status_code == 200


def test_token_file_is_private(control_plane: ControlPlane) -> None:
    mode = stat.S_IMODE(os.stat(control_plane.home / "token").st_mode)
    assert mode == 0o600


def test_binds_loopback_and_records_itself(control_plane: ControlPlane) -> None:
    info = json.loads((control_plane.home / "control.json").read_text())
    assert info["host"] == "127.0.0.1" and info["url"].startswith("http://127.0.0.1:")


def test_openapi_description(control_plane: ControlPlane) -> None:
    with control_plane.client() as c:
        spec = c.get("/api/openapi.json").json()
    assert "/api/status" in spec["paths"] and "/api/projects" in spec["paths"]


def test_register_project_over_api(control_plane: ControlPlane, tmp_path: Path) -> None:
    from labwork.project import init_project
    root = init_project(tmp_path / "api-proj", "apiProj").root
    with control_plane.client() as c:
        r = c.post("/api/projects", json={"path": str(root)})
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        detail = c.get(f"/api/projects/{pid}").json()
        assert detail["name"] == "apiProj" and "local" in detail["runconfigs"]
        bad = c.post("/api/projects", json={"path": str(tmp_path)})
        assert bad.status_code == 404 and "not a labwork project" in bad.json()["msg"]
        extra = c.post("/api/projects", json={"path": str(root), "colour": 1})
        assert extra.status_code == 400 and "colour" in extra.json()["msg"]
        assert c.get("/api/projects/99999").status_code == 404


def test_cli_starts_a_control_plane_when_none_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = dict(os.environ, LABWORK_HOME=str(home), LABWORK_PORT="0")
    proc = subprocess.run([sys.executable, "-m", "labwork", "init", str(tmp_path / "p"), "--name", "auto"],
                          env=env, capture_output=True, text=True, timeout=120)
    cp = ControlPlane(home)
    try:
        assert proc.returncode == 0, proc.stderr
        assert "starting one in the background" in proc.stderr
        info = json.loads((home / "control.json").read_text())
        r = httpx.get(info["url"] + "/api/projects", headers={"Authorization": f"Bearer {cp.token}"})
        assert [p["name"] for p in r.json()] == ["auto"]
        # the second command finds the running one and says nothing about starting
        again = subprocess.run([sys.executable, "-m", "labwork", "init", str(tmp_path / "q")],
                               env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "starting" not in again.stderr
    finally:
        info = json.loads((home / "control.json").read_text())
        os.kill(info["pid"], 15)


def test_bad_settings_stop_serve_with_a_clear_message(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("colour = 'red'\n")
    proc = subprocess.run([sys.executable, "-m", "labwork", "serve", "--port", "0"],
                          env=dict(os.environ, LABWORK_HOME=str(home)), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown setting 'colour'" in proc.stderr and str(home / "config.toml") in proc.stderr


def test_taken_port_is_a_clear_error(control_plane: ControlPlane, tmp_path: Path) -> None:
    port = control_plane.url.rsplit(":", 1)[1]
    proc = subprocess.run([sys.executable, "-m", "labwork", "serve", "--port", port],
                          env=dict(os.environ, LABWORK_HOME=str(tmp_path / "h2")), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and f"port {port}" in proc.stderr and "taken" in proc.stderr


def test_cli_bad_input_exit_codes(control_plane: ControlPlane, tmp_path: Path) -> None:
    from labwork.project import init_project
    root = init_project(tmp_path / "p", "p").root
    r = control_plane.cli("computetarget", "attach", "spark", "--name", "s", "--master", "bogus",
                          "--project", str(root), check=False)
    assert r.returncode == 2 and "master" in r.stderr
    r = control_plane.cli("runconfig", "show", "nope", "--project", str(root), check=False)
    assert r.returncode == 3 and "no run configuration 'nope'" in r.stderr
    ok = control_plane.cli("computetarget", "attach", "spark", "--name", "s", "--master", "local[2]",
                           "--project", str(root))
    assert "'p s'" in ok.stdout
    listed = json.loads(control_plane.cli("runconfig", "list", "--json", "--project", str(root)).stdout)
    assert set(listed["runconfigs"]) == {"local", "s"}
