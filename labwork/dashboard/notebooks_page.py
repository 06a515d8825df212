"""Project › Notebooks: the project's notebooks; one click shows a read-only preview (no server),
and Open in Jupyter opens the notebook on the project's server (starting it when none runs)."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from labwork.dashboard.auth import page_auth
from labwork.dashboard.web import dashboard_of, get_project, render

router = APIRouter()

# Sanitized by nbconvert; the sandbox also gives it an opaque origin (no cookies, no script).
PREVIEW_CSP = ("sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; img-src data:; "
               "style-src 'unsafe-inline' data:; font-src data:; object-src 'none'; base-uri 'none'; "
               "frame-ancestors 'self'")


@router.get("/projects/{project_id:int}/notebooks")
def notebooks(request: Request, project_id: int, path: str | None = None,
              _auth: None = Depends(page_auth)) -> Response:
    from labwork.notebooks.preview import list_notebooks
    project = get_project(request, project_id)
    items = list_notebooks(project["path"])
    selected = path if path and any(n["path"] == path for n in items) else None
    error = None
    if path and not selected:
        error = f"No notebook {path!r} in this project."
    return render(request, "notebooks.html", status_code=404 if error else 200, project=project, notebooks=items,
                  selected=selected, error=error, section="notebooks")


@router.get("/projects/{project_id:int}/notebooks/preview")
def preview(request: Request, project_id: int, path: str, _auth: None = Depends(page_auth)) -> Response:
    """The sanitized HTML of one notebook, for the page's iframe (or a tab of its own)."""
    from labwork.notebooks.preview import notebook_in_project
    project = get_project(request, project_id)
    file = notebook_in_project(Path(project["path"]), path)
    html = dashboard_of(request).previews.get(file)
    return HTMLResponse(html, headers={"Content-Security-Policy": PREVIEW_CSP, "X-Content-Type-Options": "nosniff",
                                       "Cache-Control": "no-store"})
