"""Run history pages: runs filtered by notebook, status and date (paged); one run's entries (paged),
charts of its logged values and its outputs; two or three runs side by side.

The list uses `labwork.history.queries.list_runs`; a run's page reads the history tables itself so
that a run with thousands of entries is shown a page at a time (indexed by run id).
"""
from __future__ import annotations

import math
import posixpath
from html import escape as html_escape
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from markupsafe import Markup
from sqlalchemy import func, select

from labwork.dashboard.auth import page_auth
from labwork.dashboard.charts import COLORS, line_chart, numeric_points
from labwork.dashboard.web import (dashboard_of, error_text, fmt_duration, fmt_time, get_project, message_page,
                                   parse_time, render)
from labwork.errors import ConfigError, NotFound

router = APIRouter()

PAGE_SIZE = 50
ENTRIES_PAGE = 100
STATUSES = ("running", "completed", "failed", "interrupted")


# --- the list -------------------------------------------------------------------------------------------

def _day_bound(value: str | None, end: bool, field: str) -> str | None:
    """A date input (YYYY-MM-DD) as the start or the end of that day; a full ISO time as given."""
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


def _when(value: str | None, end: bool, field: str):
    """A filter bound as an aware datetime (a date means the start or the end of that day)."""
    from datetime import UTC, datetime
    text = _day_bound(value, end, field)
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"'{field}' is not a date or time: {text!r}",
                          hint="use YYYY-MM-DD or ISO 8601 such as 2024-05-01T12:00:00") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")


def list_page(store, *, project_dir: str | None, notebook: str | None, status: str | None, since: Any,
              until: Any, limit: int, offset: int) -> dict[str, Any]:
    """One page of runs, newest first, and the total: the columns the list shows, read with Core
    (no ORM objects), on indexed columns (project_dir, status, started_at; notebook by equality or suffix).
    Filters as `labwork.history.queries.list_runs`."""
    from sqlalchemy import or_

    from labwork.history.tables import RunRow
    conds = []
    if project_dir:
        conds.append(RunRow.project_dir == project_dir)
    if notebook:
        nb = notebook.strip()
        nb = nb[2:] if nb.startswith("./") else nb
        conds.append(or_(RunRow.notebook == nb, RunRow.notebook.like("%/" + _like_escape(nb), escape="\\")))
    if status:
        conds.append(RunRow.status == status)
    if since is not None:
        conds.append(RunRow.started_at >= since)
    if until is not None:
        conds.append(RunRow.started_at <= until)
    cols = (RunRow.id, RunRow.notebook, RunRow.project, RunRow.status, RunRow.started_at, RunRow.ended_at,
            RunRow.entry_count, RunRow.error_count, RunRow.runconfig)
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(RunRow).where(*conds)).scalar() or 0
        rows = conn.execute(select(*cols).where(*conds).order_by(RunRow.started_at.desc(), RunRow.id)
                            .limit(limit).offset(offset)).all()
    runs = []
    for r in rows:
        started, ended = parse_time(r.started_at), parse_time(r.ended_at)
        runs.append({"id": r.id, "notebook": r.notebook, "project": r.project, "status": r.status,
                     "started": fmt_time(started), "entry_count": r.entry_count, "error_count": r.error_count,
                     "runconfig": r.runconfig,
                     "duration": fmt_duration((ended - started).total_seconds()) if started and ended else "—"})
    return {"runs": runs, "total": total}


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
        f"<td>{e(r['runconfig'] or '—')}</td></tr>")


def _list(request: Request, project: dict[str, Any] | None, notebook: str | None, status: str | None,
          since: str | None, until: str | None, page: int) -> Response:
    filters = {"notebook": notebook or "", "status": status or "", "since": since or "", "until": until or ""}
    page = max(1, page)
    error = None
    result: dict[str, Any] = {"runs": [], "total": 0}
    try:
        if status and status not in STATUSES:
            raise ConfigError(f"unknown run status {status!r}", where="status", hint=f"one of {', '.join(STATUSES)}")
        result = list_page(dashboard_of(request).store, project_dir=project["path"] if project else None,
                           notebook=(notebook or "").strip() or None, status=status or None,
                           since=_when(since, False, "from"), until=_when(until, True, "to"),
                           limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    except ConfigError as exc:  # the filter form again, the error beside it
        error = f"Filter not applied: {error_text(exc)}"
    total = result["total"]
    pages = max(1, -(-total // PAGE_SIZE))
    base = f"/projects/{project['id']}/runs" if project else "/runs"
    query = {k: v for k, v in filters.items() if v}
    return render(request, "runs.html", status_code=400 if error else 200, error=error, project=project,
                  rows=[row_html(r, project is None) for r in result["runs"]], total=total, page=page, pages=pages, base=base, query=query,
                  filters=filters, statuses=STATUSES, page_size=PAGE_SIZE, section="runs")


@router.get("/runs")
def runs(request: Request, notebook: str | None = None, status: str | None = None, since: str | None = None,
         until: str | None = None, page: int = Query(1), _auth: None = Depends(page_auth)) -> Response:
    return _list(request, None, notebook, status, since, until, page)


@router.get("/projects/{project_id:int}/runs")
def project_runs(request: Request, project_id: int, notebook: str | None = None, status: str | None = None,
                 since: str | None = None, until: str | None = None, page: int = Query(1),
                 _auth: None = Depends(page_auth)) -> Response:
    project = get_project(request, project_id)
    return _list(request, project, notebook, status, since, until, page)


# --- one run ------------------------------------------------------------------------------------------

def _find_run(s, ref: str):
    from labwork.history.queries import RUN_ID
    from labwork.history.tables import RunRow
    ref = (ref or "").strip()
    if not RUN_ID.match(ref):
        raise NotFound(f"no run '{ref}'")
    table = RunRow.__table__
    row = s.execute(select(table).where(table.c.id == ref)).first()
    if row is None and len(ref) >= 4:
        rows = s.execute(select(table).where(table.c.id.like(ref.replace("_", r"\_") + "%", escape="\\"))
                         .limit(2)).all()
        row = rows[0] if len(rows) == 1 else None
    if row is None:
        raise NotFound(f"no run '{ref}'", hint="the run history page lists the runs")
    return row


def _values(s, run_id: str) -> dict[str, dict[str, Any]]:
    """Per logged name: its flattened series, kinds, last value."""
    from labwork.history.tables import ValueRow
    rows = s.execute(select(ValueRow.name, ValueRow.value, ValueRow.kind)
                     .where(ValueRow.run_id == run_id)
                     .order_by(ValueRow.name, ValueRow.seq, ValueRow.logged_at)).all()
    out: dict[str, dict[str, Any]] = {}
    for name, value, kind in rows:
        item = out.setdefault(name, {"name": name, "series": [], "logs": 0, "last": None})
        item["logs"] += 1
        item["series"].extend(value if isinstance(value, list) else [value])
        item["last"] = value
    for item in out.values():
        item["points"] = numeric_points(item["series"])
        item["chart"] = len(item["points"]) > 1
        item["nonfinite"] = sum(1 for v in item["series"] if isinstance(v, float) and not math.isfinite(v))
        item["strings"] = [v for v in item["series"] if isinstance(v, str)][:50]
    return out


def _artifacts(s, run_id: str) -> list[dict[str, Any]]:
    from labwork.history.queries import artifact_dict
    from labwork.history.tables import ArtifactRow
    table = ArtifactRow.__table__
    rows = s.execute(select(table).where(table.c.run_id == run_id)
                     .order_by(table.c.path, table.c.uploaded_at.desc(), table.c.id.desc())).all()
    latest: dict[str, dict[str, Any]] = {}
    for a in rows:
        if a.path in latest:
            latest[a.path]["versions"] += 1
        else:
            latest[a.path] = artifact_dict(a)
    return list(latest.values())


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
    from labwork.history.queries import run_dict
    ids = list(dict.fromkeys(r.strip() for r in run if r.strip()))
    if not 2 <= len(ids) <= 3:
        return message_page(request, "Compare runs", f"Choose two or three runs to compare (got {len(ids)}).", 400)
    with dashboard_of(request).store.engine.connect() as s:
        runs = []
        for ref in ids:
            row = _find_run(s, ref)
            runs.append(run_dict(row) | {"values": _values(s, row.id)})
    names = sorted({n for r in runs for n in r["values"]})
    charts = []
    for name in names:
        series = [{"label": r["id"][:10], "color": COLORS[i], "points": r["values"][name]["points"]}
                  for i, r in enumerate(runs) if name in r["values"] and r["values"][name]["points"]]
        if any(len(s["points"]) > 1 for s in series):
            charts.append({"name": name, "svg": line_chart(series)})
    return render(request, "compare.html", runs=runs, names=names, charts=charts, colors=COLORS, section="runs")


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, page: int = Query(1), _auth: None = Depends(page_auth)) -> Response:
    from labwork.history.queries import run_dict
    from labwork.history.tables import EntryRow
    from labwork.store.tables import ProjectRow
    page = max(1, page)
    with dashboard_of(request).store.engine.connect() as conn:
        row = _find_run(conn, run_id)
        run = run_dict(row)
        total = row.entry_count or 0  # kept by ingestion
        entries = [dict(e._mapping) for e in conn.execute(
            select(EntryRow.seq, EntryRow.execution_count, EntryRow.code, EntryRow.started_at,
                   EntryRow.duration_ms, EntryRow.status, EntryRow.error_name, EntryRow.error_value,
                   EntryRow.traceback)
            .where(EntryRow.run_id == row.id).order_by(EntryRow.seq, EntryRow.started_at)
            .limit(ENTRIES_PAGE).offset((page - 1) * ENTRIES_PAGE))]
        values = _values(conn, row.id)
        artifacts = _artifacts(conn, row.id)
        project = None
        if run.get("project_dir"):
            p = conn.execute(select(ProjectRow.id, ProjectRow.name, ProjectRow.path)
                             .where(ProjectRow.path == run["project_dir"]).limit(1)).first()
            project = dict(p._mapping) if p else None
    rows = [entry_html(e) for e in entries]
    charts = [{"name": v["name"], "svg": line_chart([{"label": v["name"], "points": v["points"]}]),
               "note": f"{v['nonfinite']} NaN or infinite point(s) not drawn" if v["nonfinite"] else ""}
              for v in values.values() if v["chart"]]
    pages = max(1, -(-total // ENTRIES_PAGE))
    return render(request, "run.html", run=run, entry_rows=rows, entries_total=total, page=page, pages=pages,
                  values=list(values.values()), charts=charts, artifacts=artifacts, project=project,
                  section="runs")


@router.get("/runs/{run_id}/outputs/{path:path}")
def download_output(request: Request, run_id: str, path: str, _auth: None = Depends(page_auth)) -> Response:
    from labwork.history.queries import artifact_file
    dash = dashboard_of(request)
    file, info = artifact_file(dash.store, dash.settings.artifacts_dir, run_id, path)
    return FileResponse(file, filename=posixpath.basename(info["path"]), media_type="application/octet-stream")
