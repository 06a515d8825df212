"""Livy's request bodies, validated field by field, and the small parsers they need.

Every problem is a `LivyError` (an HTTP status and a message naming the field); the app turns it
into `{"msg": ...}`. Nothing here touches processes.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from labwork import units
from labwork.inputs import parse_id, parse_int
from labwork.spark_properties import SERVER_DECIDED, spark_conf_from_livy
from labwork.spark_properties import check_size as jvm_size

VERSION = "0.9.0-labwork"

SESSION_KINDS = {"spark", "pyspark", "sparkr", "sql", "shared"}
KIND_ALIASES = {"scala": "spark", "python": "pyspark", "python3": "pyspark", "pyspark3": "pyspark",
                "r": "sparkr"}
STATEMENT_KINDS = {"spark", "pyspark", "sparkr", "sql"}

SESSION_STATES = ("not_started", "starting", "recovering", "idle", "running", "busy",
                  "shutting_down", "error", "dead", "killed", "success")
FINISHED_STATES = {"error", "dead", "killed", "success"}
STATEMENT_STATES = ("waiting", "running", "available", "cancelling", "cancelled")


class LivyError(Exception):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg


def bad(msg: str) -> LivyError:
    return LivyError(400, msg)


def parse_duration(value: Any, what: str = "duration") -> float | None:
    """'10m' -> 600.0 seconds; a bare number is milliseconds (Spark's getTimeAsMs)."""
    try:
        return units.parse_duration(value)
    except ValueError as exc:
        raise bad(f"{what}: {exc}") from exc


def check_size(value: Any, what: str) -> str | None:
    try:
        return jvm_size(value)
    except ValueError as exc:
        raise bad(f"{what}: {exc}") from exc


def check_int(value: Any, what: str, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise bad(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, str) and parse_int(value.strip()) is not None:
        value = parse_int(value.strip())
    if not isinstance(value, int):
        raise bad(f"{what}: expected an integer, got {value!r}")
    if parse_int(value) is None:
        raise bad(f"{what}: {value} is out of range")
    if value < minimum:
        raise bad(f"{what}: must be at least {minimum}, got {value}")
    return value


def check_str(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(f"{what}: expected a string, got {value!r}")
    return value


def check_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(f"{what}: expected a list of strings, got {value!r}")
    return list(value)


def check_conf(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad(f"conf: expected a map of Spark properties, got {value!r}")
    out: dict[str, str] = {}
    for k, v in value.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (dict, list)):
            raise bad(f"conf.{k}: expected a scalar value, got {v!r}")
        out[str(k)] = str(v)
    for refused in SERVER_DECIDED:
        if refused in out:
            raise bad(f"conf: '{refused}' is decided by the server and cannot be set")
    return out


def normalize_kind(value: Any, *, what: str = "kind", allowed: set[str] = SESSION_KINDS,
                   default: str | None = "shared") -> str | None:
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad(f"{what}: expected one of {', '.join(sorted(allowed))}, got {value!r}")
    kind = KIND_ALIASES.get(value.lower(), value.lower())
    if kind not in allowed:
        raise bad(f"{what}: unknown kind '{value}' (expected one of {', '.join(sorted(allowed))})")
    if kind == "sparkr":
        if not r_available():
            raise bad(f"{what}: 'sparkr' needs R (Rscript) on the gateway's machine, and R is not "
                      "installed; use pyspark, spark, sql or shared")
        raise bad(f"{what}: 'sparkr' is not supported by this gateway (its drivers run Python "
                  "and Scala); use pyspark, spark, sql or shared")
    return kind


def r_available() -> bool:
    return shutil.which("Rscript") is not None


def local_path(uri: str) -> Path | None:
    """The local file a URI points at, or None for remote schemes (hdfs://, s3a://, ...)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file", "local"):
        return Path(parsed.path if parsed.scheme else uri).expanduser()
    if len(parsed.scheme) == 1:  # a Windows drive letter; treat as local
        return Path(uri)
    return None


def check_paths(uris: list[str], what: str, allowed: list[str]) -> None:
    roots = [Path(a).expanduser().resolve() for a in allowed]
    for uri in uris:
        path = local_path(uri)
        if path is None:
            continue
        resolved = path.resolve()
        if not any(resolved == r or r in resolved.parents for r in roots):
            raise bad(f"{what}: local path '{uri}' is not in the gateway's allowed local paths"
                      + (f" ({', '.join(allowed)})" if allowed else " (none are allowed)"))


_COMMON_FIELDS = {"proxyUser", "jars", "pyFiles", "files", "archives", "driverMemory",
                  "driverCores", "executorMemory", "executorCores", "numExecutors", "queue", "name",
                  "conf"}
SESSION_FIELDS = _COMMON_FIELDS | {"kind", "heartbeatTimeoutInSecond", "ttl", "idleTimeout"}
BATCH_FIELDS = _COMMON_FIELDS | {"file", "className", "args"}


@dataclass
class CreateRequest:
    kind: str = "shared"
    proxyUser: str | None = None
    jars: list[str] = field(default_factory=list)
    pyFiles: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    archives: list[str] = field(default_factory=list)
    driverMemory: str | None = None
    driverCores: int | None = None
    executorMemory: str | None = None
    executorCores: int | None = None
    numExecutors: int | None = None
    queue: str | None = None
    name: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    heartbeatTimeoutInSecond: int = 0
    ttl: str | None = None
    idleTimeout: str | None = None
    # batches
    file: str | None = None
    className: str | None = None
    args: list[str] = field(default_factory=list)

    def spark_conf(self) -> dict[str, str]:
        """Resource fields as Spark properties (the explicit `conf` wins where both are given)."""
        return spark_conf_from_livy(self.__dict__, self.conf)


def parse_create(body: Any, *, batch: bool, allowed_paths: list[str],
                 proxy_user: str | None = None) -> CreateRequest:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    known = BATCH_FIELDS if batch else SESSION_FIELDS
    unknown = sorted(set(body) - known)
    if unknown:
        raise bad(f"unknown field '{unknown[0]}' in the request (expected some of: "
                  f"{', '.join(sorted(known))})")
    req = CreateRequest()
    if not batch:
        req.kind = normalize_kind(body.get("kind")) or "shared"
        req.heartbeatTimeoutInSecond = check_int(body.get("heartbeatTimeoutInSecond"),
                                                 "heartbeatTimeoutInSecond") or 0
        req.ttl = check_str(body.get("ttl"), "ttl")
        req.idleTimeout = check_str(body.get("idleTimeout"), "idleTimeout")
        parse_duration(req.ttl, "ttl")
        parse_duration(req.idleTimeout, "idleTimeout")
    else:
        req.file = check_str(body.get("file"), "file")
        if not req.file:
            raise bad("file: a batch needs the application file to run")
        req.className = check_str(body.get("className"), "className")
        req.args = [str(a) for a in (body.get("args") or [])] if isinstance(
            body.get("args") or [], list) else check_list(body.get("args"), "args")
    body_user = check_str(body.get("proxyUser"), "proxyUser")
    req.proxyUser = proxy_user or body_user  # Livy: `?doAs=` wins over the body's proxyUser
    for name in ("jars", "pyFiles", "files", "archives"):
        setattr(req, name, check_list(body.get(name), name))
    req.driverMemory = check_size(body.get("driverMemory"), "driverMemory")
    req.executorMemory = check_size(body.get("executorMemory"), "executorMemory")
    req.driverCores = check_int(body.get("driverCores"), "driverCores", 1)
    req.executorCores = check_int(body.get("executorCores"), "executorCores", 1)
    req.numExecutors = check_int(body.get("numExecutors"), "numExecutors", 0)
    req.queue = check_str(body.get("queue"), "queue")
    name = check_str(body.get("name"), "name")
    if name is not None:
        name = name.strip()
        if not name:
            name = None
        elif parse_id(name) is not None:
            raise bad(f"name: '{name}' is all digits, which would clash with session ids")
        elif "/" in name:
            raise bad(f"name: '{name}' may not contain '/'")
    req.name = name
    req.conf = check_conf(body.get("conf"))
    for what in ("jars", "pyFiles", "files", "archives"):
        check_paths(getattr(req, what), what, allowed_paths)
    if batch and req.file:
        check_paths([req.file], "file", allowed_paths)
    return req


def parse_statement(body: Any, session_kind: str) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object with 'code'")
    unknown = sorted(set(body) - {"code", "kind"})
    if unknown:
        raise bad(f"unknown field '{unknown[0]}' in the statement (expected code, kind)")
    code = body.get("code")
    if not isinstance(code, str):
        raise bad("code: expected the statement's code as a string")
    kind = normalize_kind(body.get("kind"), what="kind", allowed=STATEMENT_KINDS, default=None)
    if kind is None:
        kind = "pyspark" if session_kind == "shared" else session_kind
    if session_kind != "shared" and kind != session_kind:
        raise bad(f"kind: a '{session_kind}' session runs '{session_kind}' statements only "
                  f"(got '{kind}'); create a 'shared' session to mix kinds")
    return code, kind


def _query_int(params: dict, key: str, default: int) -> int:
    """A paging parameter: ASCII digits (an optional '-') within ±2^63, else a 400 naming it."""
    text = params.get(key)
    if text in (None, ""):
        return default
    number = parse_int(str(text))
    if number is None:
        raise bad(f"{key}: expected an integer, got {str(text)[:40]!r}")
    return number


def paging(params: dict, default_size: int = 100) -> tuple[int, int]:
    frm = _query_int(params, "from", 0)
    size = _query_int(params, "size", default_size) or default_size
    return max(frm, 0), size


def log_slice(lines: list[str], params: dict) -> tuple[int, int, list[str]]:
    """Livy's log paging: no `from` = the last `size` lines (default 100); size < 0 = all."""
    frm = _query_int(params, "from", -1)
    size = _query_int(params, "size", 100)
    total = len(lines)
    if size < 0:
        frm, size = 0, total
    elif frm < 0:
        frm = max(0, total - size)
    return frm, total, lines[frm:frm + size]


ARROW_FIELDS = {"source", "code", "kind", "maxrows", "samplemethod", "samplefraction"}


def parse_arrow_request(body: Any, session_kind: str) -> dict[str, Any]:
    """A request for a result as Arrow (`POST /sessions/{id}/arrow`): a SQL query or a named
    DataFrame (`kind` says where the variable lives: pyspark or spark), with sparkmagic's
    `maxrows` (-1 = all), `samplemethod` (take | sample) and `samplefraction`."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object with 'source' and 'code'")
    unknown = sorted(set(body) - ARROW_FIELDS)
    if unknown:
        raise bad(f"unknown field '{unknown[0]}' (expected some of: {', '.join(sorted(ARROW_FIELDS))})")
    source = body.get("source", "sql")
    if source not in ("sql", "variable"):
        raise bad(f"source: expected 'sql' or 'variable', got {source!r}")
    code = body.get("code")
    if not isinstance(code, str) or not code.strip():
        raise bad("code: expected the SQL query (source sql) or the DataFrame's name (source variable)")
    kind = normalize_kind(body.get("kind"), allowed={"pyspark", "spark"},
                          default="spark" if session_kind == "spark" else "pyspark")
    if kind == "spark" and session_kind not in ("spark", "shared"):
        raise bad("kind: Scala variables need a 'spark' or 'shared' session")
    maxrows = body.get("maxrows", 2500)
    if isinstance(maxrows, bool) or not isinstance(maxrows, int) or not -1 <= maxrows < 2 ** 31:
        raise bad(f"maxrows: expected a number of rows, or -1 for all, got {maxrows!r}")
    method = body.get("samplemethod", "take")
    if method not in ("take", "sample"):
        raise bad(f"samplemethod: expected 'take' or 'sample', got {method!r}")
    fraction = body.get("samplefraction", 0.1)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise bad(f"samplefraction: expected a number in (0, 1], got {fraction!r}")
    return {"op": "collect", "source": source, "code": code, "kind": kind, "maxrows": maxrows,
            "samplemethod": method, "samplefraction": float(fraction)}


def parse_upload_params(params: Any, session_kind: str) -> dict[str, Any]:
    """`POST /sessions/{id}/arrow/upload?name=N[&kind=pyspark|spark]`: where the frame goes."""
    name = params.get("name") or ""
    if not name.isidentifier():
        raise bad(f"name: expected a variable name, got {name[:40]!r}")
    kind = normalize_kind(params.get("kind"), allowed={"pyspark", "spark"},
                          default="spark" if session_kind == "spark" else "pyspark")
    if kind == "spark" and session_kind not in ("spark", "shared"):
        raise bad("kind: Scala variables need a 'spark' or 'shared' session")
    return {"op": "bind", "name": name, "kind": kind}
