"""The server manager's answers are declared models: /api/openapi.json shows their schemas (not
`dict[str, Any]`), and the JSON keeps the shape docs/notebooks.md documents."""
from __future__ import annotations

import httpx

from labwork.notebooks.models import ServerStatus, ServerSummary


def _schema_of(spec: dict, path: str, method: str, status: str = "200") -> dict:
    return spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def test_openapi_shows_the_server_schemas(api: httpx.Client) -> None:
    spec = api.get("/api/openapi.json").json()
    assert _schema_of(spec, "/api/projects/{ref}/server", "get")["$ref"].endswith("/ServerStatus")
    assert _schema_of(spec, "/api/projects/{ref}/server", "post", "201")["$ref"].endswith("/ServerStatus")
    assert _schema_of(spec, "/api/servers", "get")["items"]["$ref"].endswith("/ServerSummary")
    assert _schema_of(spec, "/api/projects/{ref}/servers", "get")["items"]["$ref"].endswith("/ServerHistoryEntry")
    assert _schema_of(spec, "/api/projects/{ref}/server/logs", "get")["$ref"].endswith("/LogChunk")
    assert _schema_of(spec, "/api/projects/{ref}/notebooks/open", "post")["$ref"].endswith("/OpenResult")
    schemas = spec["components"]["schemas"]
    kernels = schemas["ServerStatus"]["properties"]["kernels"]
    assert kernels["items"]["$ref"].endswith("/KernelInfo")
    assert schemas["ServerStatus"]["properties"]["idle"]["anyOf"][0]["$ref"].endswith("/IdleStatus")
    assert {"seconds_left", "deadline", "url", "token", "stop_reason"} <= set(schemas["ServerStatus"]["properties"])


def test_a_project_without_a_server_keeps_the_documented_shape(make_project, api: httpx.Client) -> None:
    project = make_project()
    status = api.get(f"/api/projects/{project['id']}/server").json()
    assert set(status) == set(ServerStatus.model_fields)
    assert status["state"] == "none" and status["kernels"] == [] and status["id"] is None
    assert status["project"] == {"id": project["id"], "name": project["name"], "path": project["path"]}
    assert set(ServerSummary.model_fields) == set(ServerStatus.model_fields) - {"kernels", "kernel_ends", "idle"}
    assert status["idle"] is None  # only a running server has an idle state
