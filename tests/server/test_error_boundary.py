"""One error boundary: every error of the control plane in one JSON shape for /api, *.json and
Accept: application/json (401 included), the dashboard's page otherwise; clients rebuild the error
with LabworkError.from_dict."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from labwork import errors
from labwork.server.client import ControlClient

SHAPE = {"error", "msg"}


def _is_error_shape(body: dict) -> bool:
    return SHAPE <= set(body) <= SHAPE | {"where", "hint", "details"}


def test_api_answers_every_error_in_one_shape(control_plane) -> None:
    anonymous = httpx.get(control_plane.url + "/api/status", timeout=10)
    assert anonymous.status_code == 401 and _is_error_shape(anonymous.json())
    assert anonymous.json()["error"] == "Unauthorized"
    with control_plane.client() as c:
        for r, status, kind in [
            (c.get("/api/projects/99999"), 404, "NotFound"),
            (c.get("/api/no-such-route"), 404, "NotFound"),
            (c.post("/api/projects", json={"path": "/x", "colour": 1}), 400, "ValidationError"),
            (c.put("/api/status"), 405, "MethodNotAllowed"),
        ]:
            assert r.status_code == status and _is_error_shape(r.json()), (status, r.text)
            assert r.json()["error"] == kind
            rebuilt = errors.LabworkError.from_dict(r.json(), r.status_code)
            assert rebuilt.http_status == status and rebuilt.message == r.json()["msg"]


def test_pages_raise_and_the_boundary_renders_page_or_json(control_plane) -> None:
    with control_plane.client() as c:
        page = c.get("/projects/99999/jupyter")
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert 'id="page-error"' in page.text and "99999" in page.text
        asked = c.get("/projects/99999/jupyter", headers={"Accept": "application/json"})
        assert asked.status_code == 404 and asked.json()["error"] == "NotFound"
        polled = c.get("/projects/99999/jupyter/logs.json")
        assert polled.status_code == 404 and _is_error_shape(polled.json())
        job = c.get("/jobs/nope.json")
        assert job.status_code == 404 and job.json()["error"] == "NotFound"
        fragment = c.get("/projects/99999/environment/alert")
        assert fragment.status_code == 404 and "<html" not in fragment.text and "page-error" in fragment.text
        stop = c.post("/projects/99999/jupyter/stop")  # a bearer caller needs no CSRF token
        assert stop.status_code == 404 and "Not stopped: " in stop.text


def test_the_cli_client_rebuilds_the_class(control_plane, tmp_path: Path) -> None:
    client = ControlClient(control_plane.url, control_plane.token)
    try:
        with pytest.raises(errors.NotFound) as missing:
            client.request("GET", "/api/projects/99999")
        assert missing.value.exit_code == 3
        with pytest.raises(errors.InvalidRequest):
            client.request("POST", "/api/projects", json={"path": str(tmp_path), "colour": 1})
    finally:
        client.close()
    wrong = ControlClient(control_plane.url, "wrong-token")
    try:
        with pytest.raises(errors.Unauthorized, match="wrong, revoked or expired token"):
            wrong.request("GET", "/api/status")
    finally:
        wrong.close()
