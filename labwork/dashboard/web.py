"""What every dashboard page shares: the Jinja2 environment, `render`, filters and small helpers."""
from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from labwork import __version__, units
from labwork.auth.identity import identity_of
from labwork.errors import ConfigError, Conflict, LabworkError, NotFound

if TYPE_CHECKING:
    from labwork.dashboard.state import Dashboard

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Pages are ours alone: no inline script, no other origins, not framed by others.
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
            "frame-src 'self'; frame-ancestors 'self'; object-src 'none'; base-uri 'none'")


def parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def fmt_time(value: Any) -> str:
    dt = parse_time(value)
    if dt is None:
        return "—"
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(seconds: Any) -> str:
    if seconds is None:
        return "—"
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "—"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {sec:02d} s"


def fmt_left(seconds: Any) -> str:
    """Time left before a deadline, as the page's countdown shows it."""
    if seconds is None:
        return "no limit"
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m:02d} min {sec:02d} s"


def fmt_size(n: Any) -> str:
    try:
        n = float(n)
    except (TypeError, ValueError):
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        if math.isfinite(v) and v != int(v):
            return f"{v:.6g}"
        return f"{v:g}"
    if isinstance(v, list):
        inner = ", ".join(fmt_value(x) for x in v[:8])
        return f"[{inner}{', …' if len(v) > 8 else ''}]"
    return str(v)


def fmt_hours(hours: float | None) -> str:
    """A time limit in hours: `6 h`, `8.5 h`, `no limit`."""
    return "no limit" if hours is None else f"{round(float(hours), 2):g} h"


def limit_hours(server: dict[str, Any]) -> float | None:
    """A server's time limit in hours as it stands now: the configured hours plus every Extend
    (from its start to its deadline); None for no limit."""
    started, deadline = parse_time(server.get("started")), parse_time(server.get("deadline"))
    if server.get("no_limit") or deadline is None:
        return None
    if started is None:
        return (server.get("config") or {}).get("hours")
    return round((deadline - started).total_seconds() / 3600, 2)


def time_limit(server: dict[str, Any] | None) -> str:
    """`limit_hours` as text; the server card, the projects list and Extend's answer use it."""
    return fmt_hours(limit_hours(server)) if server else "—"


def config_summary(cfg: dict[str, Any] | None, limit: str | None = None) -> str:
    """`Spark · JupyterLab · 6 h · driver 1g × 1, 2 executors 1g × 1` for a ServerConfig dict
    (`limit` replaces the configured hours: a running server's limit after Extend)."""
    if not cfg:
        return "—"
    kind = "Spark" if cfg.get("kind") == "spark" else "Python"
    ui = "classic Notebook" if cfg.get("ui") == "classic" else "JupyterLab"
    if limit is None:
        limit = fmt_hours(cfg.get("hours"))
    text = f"{kind} · {ui} · {limit}"
    sp = cfg.get("spark") or {}
    if cfg.get("kind") == "spark" and sp:
        ex = (f"dynamic {sp.get('min_executors')}–{sp.get('max_executors')} executors"
              if sp.get("dynamic_allocation") else f"{sp.get('executors')} executor(s)")
        text += (f" · driver {sp.get('driver_memory')} × {sp.get('driver_cores')} core(s), {ex} "
                 f"{sp.get('executor_memory')} × {sp.get('executor_cores')} core(s)")
    return text


def server_summary(server: dict[str, Any] | None) -> str:
    """A server's configuration with its time limit as it stands now (see `time_limit`)."""
    if not server:
        return "—"
    return config_summary(server.get("config"), time_limit(server))


def urlq(value: Any) -> str:
    return quote(str(value), safe="/")


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      auto_reload=False, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(time=fmt_time, duration=fmt_duration, left=fmt_left, size=fmt_size,
                       value=fmt_value, config=config_summary, server_config=server_summary,
                       limit=time_limit, urlq=urlq, timeout=units.format_seconds)
    env.globals.update(version=__version__, urlencode=urlencode)
    return env


ENV = _env()


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    from labwork.dashboard.auth import csrf_token, set_cookies
    context.setdefault("error", None)
    context.setdefault("notice", None)
    context.setdefault("user", identity_of(request).user)
    html = ENV.get_template(template).render(request=request, csrf=csrf_token(request), path=request.url.path,
                                             **context)
    response = HTMLResponse(html, status_code=status_code,
                            headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
                                     "Referrer-Policy": "same-origin", "Cache-Control": "no-store"})
    return set_cookies(request, response)


def render_fragment(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)


def error_text(exc: LabworkError) -> str:
    """A LabworkError as one clear sentence (where, message, hint), with the hint the dashboard's
    way (what to click or fill in) rather than the command line's flags."""
    text = exc.message
    if exc.where:
        text = f"{exc.where}: {text}"
    hint = exc.hint_for("dashboard")
    if hint:
        text += f" (hint: {hint})"
    return text


def file_problems(loaded: Any) -> list[dict[str, Any]]:
    """A loaded project's broken files (`Project.problems`): path, the problem, the file's name."""
    return [{"where": e.where, "msg": e.message, "name": e.details.get("name")} for e in loaded.problems]


def message_page(request: Request, title: str, error: str, status: int = 400) -> HTMLResponse:
    return render(request, "message.html", status_code=status, title=title, error=error)


# --- the error page: what the one error boundary (labwork.http_errors) renders for a page ----------

# What a form page catches to show the form again with the error beside it: errors about what was
# typed (malformed, a name already taken, a folder that is no project). Every other error is raised
# to the boundary, which shows the error page.
FORM_ERRORS: tuple[type[LabworkError], ...] = (ConfigError, Conflict, NotFound)

_PREFIX_KEY, _FRAGMENT_KEY = "labwork_error_prefix", "labwork_error_fragment"
TITLES = {400: "Not done", 401: "Log in again", 403: "Refused", 404: "Not found", 409: "Not done",
          503: "Unavailable"}


def fails_as(prefix: str | None = None, *, fragment: bool = False):
    """A route's dependency saying how its errors read: `prefix` leads the message ("Not
    stopped"); a `fragment` route (HTML swapped into a page) gets its error as a fragment."""
    def declare(request: Request) -> None:
        state = request.scope.setdefault("state", {})
        state[_PREFIX_KEY], state[_FRAGMENT_KEY] = prefix, fragment
    return declare


def error_page(request: Request, exc: LabworkError) -> HTMLResponse:
    """A LabworkError as the dashboard shows it: the message page (or a fragment) with its status."""
    state = request.scope.get("state", {})
    prefix = state.get(_PREFIX_KEY)
    text = f"{prefix}: {error_text(exc)}" if prefix else error_text(exc)
    headers = {"Cache-Control": "no-store"}
    if state.get(_FRAGMENT_KEY):
        return HTMLResponse(render_fragment("error_fragment.html", error=text),
                            status_code=exc.http_status, headers=headers)
    response = message_page(request, prefix or TITLES.get(exc.http_status, "Error"), text, exc.http_status)
    response.headers.update({**exc.http_headers, **headers})
    return response


class _HasDashboard(Protocol):
    dashboard: Dashboard


def dashboard_of(request: Request) -> Dashboard:
    """The pages' one way to what they read (the control plane's `Services.dashboard`)."""
    services: _HasDashboard = request.app.state.services
    return services.dashboard


def get_project(request: Request, project_id: int) -> dict[str, Any]:
    """The registered project by id (NotFound otherwise)."""
    from labwork.project.registry import get_project_row
    return get_project_row(dashboard_of(request).store, int(project_id))
