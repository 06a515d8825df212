"""The one exception hierarchy.

Every error a user can cause carries what the CLI and the API need to report it: a message,
where it happened (a file, a field, an id) and what was expected. `labwork.cli` and
`labwork.server.app` turn these into exit codes and HTTP answers in one place each.
"""
from __future__ import annotations

from typing import Any


class LabworkError(Exception):
    """Base class: a problem labwork can explain to the user."""

    http_status: int = 400
    exit_code: int = 1

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": type(self).__name__, "msg": self.message}
        if self.where:
            out["where"] = self.where
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        text = self.message
        if self.where:
            text = f"{self.where}: {text}"
        if self.hint:
            text = f"{text}\n  hint: {self.hint}"
        return text


class ConfigError(LabworkError):
    """A project or settings file is malformed: path, key and expectation are in the message."""

    exit_code = 2


class NotFound(LabworkError):
    http_status = 404
    exit_code = 3


class Conflict(LabworkError):
    """The request clashes with current state (a server already runs, a name is taken)."""

    http_status = 409
    exit_code = 4


class Forbidden(LabworkError):
    """A path escapes the project or store, or a rule refuses the action."""

    http_status = 403
    exit_code = 5


class Unavailable(LabworkError):
    """A dependency (control plane, Java, an optional extra) is missing or not answering."""

    http_status = 503
    exit_code = 6


class MissingExtra(Unavailable):
    """An optional part is not installed; the hint names the extra."""

    def __init__(self, extra: str, what: str) -> None:
        super().__init__(f"{what} needs the optional extra '{extra}'",
                         hint=f"install labwork[{extra}] (pip install 'labwork[{extra}]')")


class UnsupportedMediaType(LabworkError):
    """A request body of the wrong Content-Type (e.g. text/plain where JSON is read)."""

    http_status = 415
