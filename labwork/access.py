"""The rules every HTTP entry point of labwork applies before it does anything.

One place for what the control plane (`labwork.server.auth`) and the standalone Spark gateway
(`labwork.gateway.app`) share, so both refuse the same requests for the same reasons:

* credentials: a bearer token or the password of HTTP Basic (what sparkmagic and the `livy` client
  send); compared in constant time;
* cross-site requests: a state-changing request (not GET/HEAD/OPTIONS) whose Origin (or Referer)
  names another server is refused whatever it carries (a browser adds Origin to every cross-origin
  POST; clients such as sparkmagic, `livy` and curl send none). One authenticated only by what a
  browser adds by itself (a cookie) must also show it comes from this server's own pages. Cookies
  are not scoped by port and SameSite treats every port of 127.0.0.1 as the same site, so this
  check, not the cookie's attributes, is what stops a page on another port;
* JSON bodies: a route that reads JSON refuses another Content-Type (text/plain and the form types
  are what a cross-site page may send without asking), 415 naming the expected type.
"""
from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_TYPE = "application/json"


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; empty values never match."""
    if not given or not expected:
        return False
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"),
                                  expected.encode("utf-8", "surrogateescape"))


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic ...` header, None when it is not one."""
    if not header.lower().startswith("basic "):
        return None
    try:
        text = base64.b64decode(header[6:].strip(), validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def presented_secret(headers: Mapping[str, str]) -> tuple[str | None, str | None, bool]:
    """(secret, user, present) from the Authorization header: a bearer token, or Basic's password
    (its user name is the Livy user). `present` says an Authorization header was sent at all."""
    header = headers.get("authorization", "")
    if not header:
        return None, None, False
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None, None, True
    creds = basic_credentials(header)
    if creds:
        return creds[1] or None, creds[0] or None, True
    return None, None, True


def request_source(headers: Mapping[str, str]) -> str | None:
    """Where the browser says the request comes from: Origin, else Referer (None for clients that
    send neither)."""
    return headers.get("origin") or headers.get("referer") or None


def is_this_server(source: str, host: str) -> bool:
    parts = urlsplit(source)
    return (parts.scheme in ("http", "https") and bool(parts.netloc) and bool(host)
            and parts.netloc.lower() == host.lower())


def cross_site_problem(method: str, headers: Mapping[str, str], *, ambient_only: bool) -> str | None:
    """Why a request must be refused as cross-site, or None. `ambient_only`: its only credential
    is one a browser attaches by itself (the session cookie)."""
    if method.upper() in SAFE_METHODS:
        return None
    source = request_source(headers)
    host = headers.get("host", "")
    if source is not None and not is_this_server(source, host):
        shown = source if len(source) <= 200 else source[:200] + "…"
        return f"the request came from another site ({shown})"
    if ambient_only and source is None:
        return ("a request authenticated only by the browser's session cookie must come from this "
                "server's own pages (it has no Origin or Referer header)")
    return None


def json_type_problem(content_type: str | None) -> str | None:
    """Why a request body is not JSON by its Content-Type, or None (application/json, or any
    application/...+json, with parameters such as charset)."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == JSON_TYPE or (mime.startswith("application/") and mime.endswith("+json")):
        return None
    got = f"'{mime}'" if mime else "no Content-Type"
    return f"the request body must be JSON: send Content-Type: {JSON_TYPE} (got {got})"
