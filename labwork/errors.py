"""The one exception hierarchy, and its wire form.

Every error a user can cause carries what the CLI and the API need to report it: a message,
where it happened (a file, a field, an id) and what was expected. Each front end turns them into
its answer in one place: `labwork.cli.main` (exit codes), `labwork.http_errors` (HTTP: JSON for
`/api`, `*.json` and `Accept: application/json`, else the dashboard's page). Over HTTP an error
travels as `to_dict()` and is rebuilt with `LabworkError.from_dict` by every client of the API.

    LabworkError                 400  exit 1   a problem labwork can explain
    ├── ConfigError              400  exit 2   a project file, setting or form field is malformed
    │   └── InvalidRequest       400  exit 2   a request's body or parameters ("ValidationError")
    ├── Unauthorized             401  exit 1   no valid token or session
    ├── Forbidden                403  exit 5   a path leaves its folder, a rule refuses the action
    ├── NotFound                 404  exit 3   no such project, server, run, notebook or file
    ├── MethodNotAllowed         405  exit 1   the path exists, the method does not
    ├── Conflict                 409  exit 4   clashes with the current state
    ├── TooLarge                 413  exit 1   a body or upload over its limit
    ├── UnsupportedMediaType     415  exit 1   a body of the wrong Content-Type
    ├── TooManyRequests          429  exit 1   log-in attempts over their limit (Retry-After)
    ├── Unavailable              503  exit 6   a dependency is missing or not answering
    │   ├── MissingExtra         503  exit 6   an optional extra is not installed
    │   └── StartFailed          503  exit 6   a Jupyter server did not come up (notebooks.spawner)
    └── HTTPError                any  exit 1   an HTTP answer with another status
"""
from __future__ import annotations

from typing import Any, ClassVar


class LabworkError(Exception):
    """Base class: a problem labwork can explain to the user."""

    http_status: int = 400
    exit_code: int = 1
    kind: ClassVar[str | None] = None  # the wire name ("error" in to_dict); None: the class name
    http_headers: dict[str, str] = {}  # added to its HTTP answer (never mutated: replaced)

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 details: dict[str, Any] | None = None, hints: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint  # the command line's (and the API's) phrasing: commands and flags
        self.hints = hints or {}  # other front ends' phrasing, e.g. {"dashboard": "press Start"}
        self.details = details or {}

    @classmethod
    def wire_name(cls) -> str:
        return cls.kind or cls.__name__

    def hint_for(self, front: str) -> str | None:
        """The hint as `front` ("dashboard", ...) phrases it: each names its own buttons or flags."""
        return self.hints.get(front, self.hint)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.wire_name(), "msg": self.message}
        if self.where:
            out["where"] = self.where
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_dict(cls, data: Any, status: int | None = None) -> LabworkError:
        """The error an answer's body describes (`to_dict`'s shape), as the class it names, else
        the class of its HTTP status; a body in another shape still gives its text."""
        body = data if isinstance(data, dict) else {"msg": "" if data is None else str(data)}
        named = _by_wire_name().get(str(body.get("error") or ""))
        kind = named or _BY_STATUS.get(status or 0, LabworkError)
        msg = body.get("msg") or body.get("detail") or body.get("message") or (
            f"HTTP {status}" if status else "error")
        details = body.get("details") if isinstance(body.get("details"), dict) else None
        exc = kind.__new__(kind)  # not kind(...): subclasses may take other arguments (MissingExtra)
        LabworkError.__init__(exc, str(msg), where=body.get("where"), hint=body.get("hint"),
                              details=details)
        if status and status != kind.http_status:
            exc.http_status = status  # the status it came with (a 502 stays a 502)
        return exc

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


class InvalidRequest(ConfigError):
    """A request's body or parameters failed validation (FastAPI's own check, rendered as 400)."""

    kind = "ValidationError"


class Unauthorized(LabworkError):
    """No valid token or session came with the request."""

    http_status = 401
    http_headers = {"WWW-Authenticate": "Bearer"}


class NotFound(LabworkError):
    http_status = 404
    exit_code = 3


class MethodNotAllowed(LabworkError):
    http_status = 405


class Conflict(LabworkError):
    """The request clashes with current state (a server already runs, a name is taken)."""

    http_status = 409
    exit_code = 4


class Forbidden(LabworkError):
    """A path escapes the project or store, or a rule refuses the action."""

    http_status = 403
    exit_code = 5


class TooLarge(LabworkError):
    """A request body or upload over its limit."""

    http_status = 413


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


class TooManyRequests(LabworkError):
    """Too many attempts (log-in) in a short time; `retry_after` seconds go in Retry-After."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: int = 60, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.http_headers = {"Retry-After": str(max(1, int(retry_after)))}


class HTTPError(LabworkError):
    """An HTTP answer whose status no other class stands for (its `http_status` is that status)."""


def _subclasses(cls: type[LabworkError]) -> list[type[LabworkError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_subclasses(sub))
    return out


def _by_wire_name() -> dict[str, type[LabworkError]]:
    """Every class of the tree by its wire name (subclasses defined elsewhere included)."""
    return {c.wire_name(): c for c in _subclasses(LabworkError)}


# An answer without a known name: the class of its status (the first class in the tree with it).
_BY_STATUS: dict[int, type[LabworkError]] = {
    400: ConfigError, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
    409: Conflict, 413: TooLarge, 415: UnsupportedMediaType, 429: TooManyRequests, 503: Unavailable}


def error_class_for_status(status: int) -> type[LabworkError]:
    """The class an HTTP status stands for (LabworkError when none does)."""
    return _BY_STATUS.get(status, LabworkError)
