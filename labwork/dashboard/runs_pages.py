"""Run history pages: runs filtered by project, notebook, status and date (paged); one run's entries
(paged), charts of its logged values and its outputs; two or three runs side by side.

Every read is one of history's query functions (`labwork.history.queries`), so a run prefix and
a filter mean here what they mean to the API and the CLI: an ambiguous prefix is a Conflict naming
the candidates, a project matches a run's folder or its name. This module turns their answers into
HTML (rows written in Python where a page is busy) and charts.
"""
from __future__ import annotations

import math
import posixpath
from datetime import date
from html import escape as html_escape
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from markupsafe import Markup
from sqlalchemy import or_, select
from sqlalchemy.engine import Connection

from labwork.auth.identity import identity_of
from labwork.auth.members import runs_filter, visible_folders
from labwork.dashboard.auth import page_auth
from labwork.dashboard.charts import COLORS, line_chart, numeric_points
from labwork.dashboard.web import (dashboard_of, error_text, fmt_duration, fmt_time, get_project, parse_time,
                                   render)
from labwork.errors import ConfigError
from labwork.history import artifacts, queries
from labwork.history.records import RUN_STATUSES
from labwork.store.tables import ProjectRow

router = APIRouter()

PAGE_SIZE = 50
ENTRIES_PAGE = 100


# --- the list -------------------------------------------------------------------------------------------

def _day_bound(value: str | None, end: bool, field: str) -> str | None:
    """A date input (YYYY-MM-DD) as the start or the end of that day; a full ISO time as given
    (history's queries parse it, and refuse what is no time)."""
    value = (value or "").strip()
    if not value:
        return None
    if len(value) == 10:
        try:
            d = date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"'{field}' is not a date: {value!r}", hint="use YYYY-MM-DD") from None
        return f"{d.isoformat()}T23:59:59.999999+00:00" if end else f"{d.isoformat()}T00:00:00+00:00"
    return value


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    """A run of `queries.list_run_summaries` with its times as the list shows them."""
    started, ended = parse_time(r["started_at"]), parse_time(r["ended_at"])
    return r | {"started": fmt_time(started),
                "duration": fmt_duration((ended - started).total_seconds()) if started and ended else "—"}


def row_html(r: dict[str, Any], with_project: bool) -> Markup:
    """One row of the runs table. Written here rather than in the template: the list is the
    busiest page, and this is several times cheaper than a dozen template expressions per row."""
    e = html_escape
    rid, status = e(r["id"]), e(r["status"])
    project = f"<td>{e(r['project'] or '—')}</td>" if with_project else ""
    return Markup(
        f'<tr data-run="{rid}"><td><input type="checkbox" class="compare-pick" name="run" value="{rid}" '
        f'aria-label="compare {rid}"></td><td><a href="/runs/{rid}"><code>{rid[:12]}</code></a></td>'
        f"<td>{e(r['notebook'] or '—')}</td>{project}"
        f'<td><span class="state state-{status}">{status}</span></td><td>{e(r["started"])}</td>'
        f"<td>{e(r['duration'])}</td><td>{r['entry_count']}</td><td>{r['error_count']}</td>"
        f"<td>{e(r['runconfig'] or '—')}</td><td>{e(r.get('user') or '—')}</td></tr>")


def _list(request: Request, project: dict[str, Any] | None, project_ref: str | None, notebook: str | None,
          status: str | None, since: str | None, until: str | None, page: int,
          user: str | None = None) -> Response:
    """The list of runs. A registered project's list matches its folder or its name (a run
    recorded elsewhere under the project's name is the project's too); on /runs, `project` is a
    folder or a name, as for `GET /api/runs`."""
    filters = {"project": project_ref or "", "notebook": notebook or "", "status": status or "",
               "since": since or "", "until": until or "", "user": user or ""}
    page = max(1, page)
    error = None
    result: dict[str, Any] = {"runs": [], "total": 0}
    try:
        refs = [project["path"], project["name"]] if project else \
            runs_filter(dashboard_of(request).store, identity_of(request).user, project_ref)
        result = queries.list_run_summaries(
            dashboard_of(request).store, project=refs, notebook=notebook, status=status,
            since=_day_bound(since, False, "from"), until=_day_bound(until, True, "to"),
            user=(user or "").strip()[:64] or None, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    except ConfigError as exc:  # the filter form again, the error beside it
        error = f"Filter not applied: {error_text(exc)}"
    total = result["total"]
    pages = max(1, -(-total // PAGE_SIZE))
    base = f"/projects/{project['id']}/runs" if project else "/runs"
    query = {k: v for k, v in filters.items() if v}
    rows = [row_html(_summary(r), project is None) for r in result["runs"]]
    return render(request, "runs.html", status_code=400 if error else 200, error=error, project=project,
                  rows=rows, total=total, page=page, pages=pages, base=base, query=query,
                  filters=filters, statuses=RUN_STATUSES, page_size=PAGE_SIZE, section="runs")


@router.get("/runs")
def runs(request: Request, project: str | None = None, notebook: str | None = None, status: str | None = None,
         since: str | None = None, until: str | None = None, page: int = Query(1),
         user: str | None = None, _auth: None = Depends(page_auth)) -> Response:
    return _list(request, None, project, notebook, status, since, until, page, user)


@router.get("/projects/{project_id:int}/runs")
def project_runs(request: Request, project_id: int, notebook: str | None = None, status: str | None = None,
                 since: str | None = None, until: str | None = None, page: int = Query(1),
                 user: str | None = None, _auth: None = Depends(page_auth)) -> Response:
    project = get_project(request, project_id)
    return _list(request, project, None, notebook, status, since, until, page, user)


# --- one run ------------------------------------------------------------------------------------------

def _chartable(values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """History's logged values per name, with what a chart needs: numeric points, non-finite ones
    counted (not drawn), the first strings."""
    for item in values.values():
        item["points"] = numeric_points(item["series"])
        item["chart"] = len(item["points"]) > 1
        item["nonfinite"] = sum(1 for v in item["series"] if isinstance(v, float) and not math.isfinite(v))
        item["strings"] = [v for v in item["series"] if isinstance(v, str)][:50]
    return values


def entry_html(e: dict[str, Any]) -> Markup:
    """One row of a run's entries table (see `row_html` for why it is written here)."""
    esc = html_escape
    status = esc(e["status"] or "")
    number = e["execution_count"] if e["execution_count"] is not None else e["seq"]
    duration = fmt_duration(e["duration_ms"] / 1000.0) if e["duration_ms"] is not None else "—"
    error = ""
    if e["status"] != "ok" and (e["error_name"] or e["error_value"]):
        error = (f'<div class="error-line"><strong>{esc(e["error_name"] or "")}</strong>: '
                 f'{esc(e["error_value"] or "")}</div>')
        if e["traceback"]:
            error += (f'<details><summary>Traceback</summary><pre class="traceback">{esc(e["traceback"])}'
                      "</pre></details>")
    return Markup(
        f'<tr class="entry-{status}"><td>{number}</td><td><pre class="code">{esc(e["code"] or "")}</pre>{error}</td>'
        f'<td><span class="state state-{status}">{status}</span></td><td>{fmt_time(e["started_at"])}</td>'
        f"<td>{duration}</td></tr>")


@router.get("/runs/compare")
def compare(request: Request, run: list[str] = Query(default=[]), _auth: None = Depends(page_auth)) -> Response:
    user = identity_of(request).user
    runs = [r for r in queries.compare_runs(dashboard_of(request).store, run)  # only the caller's projects'
            if user is not None and (user.admin or r.get("project_dir") in (visible_folders(dashboard_of(request).store, user) or []))]
    for r in runs:
        _chartable(r["values"])
    names = sorted({n for r in runs for n in r["values"]})
    charts = []
    for name in names:
        series = [{"label": r["id"][:10], "color": COLORS[i], "points": r["values"][name]["points"]}
                  for i, r in enumerate(runs) if name in r["values"] and r["values"][name]["points"]]
        if any(len(s["points"]) > 1 for s in series):
            charts.append({"name": name, "svg": line_chart(series)})
    return render(request, "compare.html", runs=runs, names=names, charts=charts, colors=COLORS, section="runs")


def _registered_project(conn: Connection, run: dict[str, Any]) -> dict[str, Any] | None:
    """The registered project a run belongs to: by its folder, else by its name."""
    if not run.get("project_dir") and not run.get("project"):
        return None
    conds = [ProjectRow.path == run["project_dir"]] if run.get("project_dir") else []
    conds += [ProjectRow.name == run["project"]] if run.get("project") else []
    rows = conn.execute(select(ProjectRow.id, ProjectRow.name, ProjectRow.path).where(or_(*conds))
                        .limit(5)).all()
    by_path = [r for r in rows if r.path == run.get("project_dir")]
    found = by_path or (rows if len(rows) == 1 else [])
    return dict(found[0]._mapping) if found else None


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, page: int = Query(1), _auth: None = Depends(page_auth)) -> Response:
    page = max(1, page)
    with dashboard_of(request).store.engine.connect() as conn:  # one connection: the run and its project
        view = queries.overview_in(conn, run_id, limit=ENTRIES_PAGE, offset=(page - 1) * ENTRIES_PAGE)
        project = _registered_project(conn, view["run"])
    run, total, values = view["run"], view["entries_total"], _chartable(view["values"])
    rows = [entry_html(e) for e in view["entries"]]
    charts = [{"name": v["name"], "svg": line_chart([{"label": v["name"], "points": v["points"]}]),
               "note": f"{v['nonfinite']} NaN or infinite point(s) not drawn" if v["nonfinite"] else ""}
              for v in values.values() if v["chart"]]
    pages = max(1, -(-total // ENTRIES_PAGE))
    return render(request, "run.html", run=run, entry_rows=rows, entries_total=total, page=page, pages=pages,
                  values=list(values.values()), charts=charts, artifacts=view["artifacts"],
                  project=project, section="runs")


@router.get("/runs/{run_id}/outputs/{path:path}")
def download_output(request: Request, run_id: str, path: str, _auth: None = Depends(page_auth)) -> Response:
    dash = dashboard_of(request)
    file, info = artifacts.artifact_file(dash.store, dash.settings.artifacts_dir, run_id, path)
    return FileResponse(file, filename=posixpath.basename(info["path"]), media_type="application/octet-stream")
