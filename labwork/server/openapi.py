"""What the control plane's OpenAPI document says about errors: every route may answer the one
error shape (`LabworkError.to_dict`) with 400, 401, 403, 404, 409, 415 or 503, and never 422 (request
validation errors are rendered as 400 by `labwork.server.app`)."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str  # the kind: ValidationError, ConfigError, NotFound, Conflict, Forbidden, Unavailable, ...
    msg: str
    where: str | None = None
    hint: str | None = None
    details: dict[str, Any] | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad input: what was wrong and where"},
    401: {"model": ErrorBody, "description": "No valid token"},
    403: {"model": ErrorBody, "description": "Refused: a cross-origin request, or a path that leaves its folder"},
    404: {"model": ErrorBody, "description": "No such project, server, run, notebook or file"},
    409: {"model": ErrorBody, "description": "Clashes with the current state"},
    415: {"model": ErrorBody, "description": "A JSON route was sent another Content-Type"},
    503: {"model": ErrorBody, "description": "A dependency is missing or not answering"},
}


def install(app: FastAPI) -> None:
    """Make `app.openapi()` drop FastAPI's 422 and its validation-error schemas, and declare every
    error answer as the JSON error shape (FastAPI would give an HTML route's errors text/html)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes,
                               description=app.description)
            for item in spec.get("paths", {}).values():
                for op in item.values():
                    if not isinstance(op, dict):
                        continue
                    responses = op.setdefault("responses", {})
                    responses.pop("422", None)
                    for code in ERROR_RESPONSES:  # JSON even where the route answers HTML
                        if str(code) in responses:
                            responses[str(code)]["content"] = {"application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            schemas = spec.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
