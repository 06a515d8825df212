"""Where a proxied request goes, and which headers cross the proxy in each direction."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

# Hop-by-hop headers (RFC 9110 §7.6.1) and those the proxy sets itself: never forwarded.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host",
})
# What the control plane's server (uvicorn) writes itself on every answer: the upstream's are
# dropped, or the browser would get two Date headers (a single-value field).
OWN_RESPONSE = frozenset({"date", "server"})
# What the browser sends for labwork, not for the server behind it.
LABWORK_ONLY = frozenset({"authorization", "x-forwarded-user"})


@dataclass(frozen=True)
class Upstream:
    """One request's destination: `origin` (`http://127.0.0.1:PORT`), the `path` asked of it
    (the upstream's own path: Jupyter servers and Spark UIs are started with the proxied prefix as
    their base, so it is the path the browser asked for), and headers the proxy adds (a Jupyter
    server's token, which the browser never sees)."""

    origin: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    # Set-Cookie names (prefixes) never passed to the browser (a Jupyter server's login cookie).
    drop_cookies: tuple[str, ...] = ()
    what: str = "server"  # for error messages: "Jupyter server 'p' of alice"
    # For an upstream served at its own root whose links carry the prefix (a Spark UI with
    # spark.ui.proxyBase): its redirects to its own paths get the prefix too.
    location_prefix: str = ""

    def target(self, scope: dict[str, Any]) -> str:
        """The request target to send upstream: the browser's path byte for byte (still
        percent-encoded: a decoded `%20` or `%0D%0A` must not reach a request line) when it is the
        upstream's path, else the upstream's path encoded again; then the query as it came."""
        raw = scope.get("raw_path")
        if raw and self.path == scope.get("path"):
            path = raw.decode("latin-1")
        else:
            path = quote(self.path, safe="/:@!$&'()*+,;=-._~")
        query = scope.get("query_string", b"").decode("latin-1")
        return path + (f"?{query}" if query else "")

    def url(self, scope: dict[str, Any]) -> str:
        return self.origin + self.target(scope)


# (the ASGI scope, with labwork's identity in its state) -> the request's Upstream; raises a
# LabworkError (NotFound for someone else's server, Unavailable for a stopped one).
Resolver = Callable[[dict[str, Any]], Awaitable[Upstream]]


@dataclass
class HeaderRules:
    """How headers are rewritten: the labwork session cookie and credentials stay behind, Origin
    and Referer are rewritten to the upstream's own origin (labwork has already refused a
    cross-site request; the upstream checks Origin against its own Host)."""

    own_cookies: Callable[[str], bool] = field(default=lambda name: name.startswith("labwork_"))

    def request(self, raw: Iterable[tuple[bytes, bytes]], up: Upstream, *, client: str | None,
                scheme: str, host: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        forwarded_for = client or ""
        for k, v in raw:
            name = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            if name in HOP_BY_HOP or name in LABWORK_ONLY or name.startswith("sec-websocket-"):
                continue
            if name == "cookie":
                value = self._cookies(value)
                if not value:
                    continue
            elif name in ("origin", "referer"):
                value = _reorigin(value, scheme, host, up.origin)
            elif name == "x-forwarded-for":
                forwarded_for = f"{value}, {forwarded_for}" if forwarded_for else value
                continue
            elif name in ("x-forwarded-proto", "x-forwarded-host"):
                continue
            out.append((name, value))
        out += [("x-forwarded-for", forwarded_for), ("x-forwarded-proto", scheme), ("x-forwarded-host", host)]
        out += list(up.headers)
        return out

    def _cookies(self, header: str) -> str:
        kept = []
        for part in header.split(";"):
            name = part.split("=", 1)[0].strip()
            if name and not self.own_cookies(name):
                kept.append(part.strip())
        return "; ".join(kept)

    @staticmethod
    def response(raw: Iterable[tuple[bytes, bytes]], up: Upstream, *, prefix_origin: str) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        for k, v in raw:
            name = k.decode("latin-1").lower()
            if name in HOP_BY_HOP or name in OWN_RESPONSE:
                continue
            if name == "set-cookie" and up.drop_cookies:
                cookie = v.decode("latin-1").split("=", 1)[0].strip()
                if cookie.startswith(up.drop_cookies):
                    continue
            if name in ("location", "content-location"):
                v = _relocate(v.decode("latin-1"), up, prefix_origin).encode("latin-1")
            out.append((name.encode("latin-1"), v))
        return out


def _relocate(value: str, up: Upstream, prefix_origin: str) -> str:
    """A redirect's target as the browser must see it: an absolute link to the upstream becomes one
    to the proxy, and (with `location_prefix`) a path of the upstream's own gets the prefix."""
    absolute = value.startswith(up.origin)
    if absolute:
        value = value[len(up.origin):] or "/"
    if up.location_prefix and value.startswith("/") and not value.startswith("//") \
            and not (value == up.location_prefix or value.startswith(up.location_prefix + "/")):
        value = up.location_prefix + value
    return prefix_origin + value if absolute else value


def _reorigin(value: str, scheme: str, host: str, origin: str) -> str:
    ours = f"{scheme}://{host}"
    if value == ours or value.startswith(ours + "/"):
        return origin + value[len(ours):]
    return value
