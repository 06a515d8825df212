"""Spark: the gateway's sessions and batches (state, kind, app id, Spark UI, logs, kill), read
from the gateway, logs and kill through its Livy API in-process (see livy.py)."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from labwork.dashboard import livy
from labwork.dashboard.auth import form_auth, page_auth
from labwork.dashboard.web import dashboard_of, fails_as, render
from labwork.errors import LabworkError, Unavailable

router = APIRouter()

Kind = Literal["sessions", "batches"]
NOTICES = {"killed": "Killed."}


def _projects_by_path(request: Request) -> dict[str, dict[str, Any]]:
    from labwork.project.registry import list_projects
    return {p["path"]: p for p in list_projects(dashboard_of(request).store)}


@router.get("/spark")
async def spark(request: Request, ok: str | None = None, _auth: None = Depends(page_auth)) -> Response:
    data: dict[str, Any] = {"available": True, "sessions": [], "batches": [], "problem": None}
    try:
        data["sessions"] = livy.listing(request, "sessions")
        data["batches"] = livy.listing(request, "batches")
    except Exception as exc:  # the gateway failing must not take the page down
        data["available"] = False
        data["problem"] = f"{type(exc).__name__}: {exc}"
    from fastapi.concurrency import run_in_threadpool
    projects = await run_in_threadpool(_projects_by_path, request)
    for item in data["sessions"] + data["batches"]:
        conf = item.get("conf") if isinstance(item.get("conf"), dict) else {}
        item["_project"] = projects.get(str(conf.get("spark.labwork.project") or ""))
        item["_ui"] = livy.ui_url(item)
    return render(request, "spark.html", notice=NOTICES.get(ok or ""), section="spark", **data)


async def _gateway(request: Request, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """The gateway's answer; its silence is Unavailable (the error boundary shows it)."""
    try:
        return await livy.call(request, method, path, **kwargs)
    except Exception as exc:  # whatever the in-process call raised: the gateway did not answer
        raise Unavailable(f"The gateway did not answer: {exc}") from exc


def _refusal(code: int, body: Any, default: str, status: int) -> LabworkError:
    """A gateway error answer (Livy's `{"msg": ...}`) as the error the page shows, with `status`."""
    exc = LabworkError.from_dict(body if isinstance(body, dict) and body.get("msg") else {"msg": default}, code)
    exc.http_status = status
    return exc


@router.get("/spark/{kind}/{item_id}/log", dependencies=[Depends(fails_as("Spark log"))])
async def log(request: Request, kind: Kind, item_id: str, size: int = 2000,
              _auth: None = Depends(page_auth)) -> Response:
    size = max(1, min(size, 20000))
    livy.check_visible(request, kind, item_id)
    code, body = await _gateway(request, "GET", f"/{kind}/{item_id}/log", params={"size": size})
    if code != 200 or not isinstance(body, dict):
        raise _refusal(code, body, f"No log for {kind[:-1]} {item_id} (HTTP {code}).",
                       404 if code in (404, 405) else 502)
    lines = [str(x) for x in body.get("log") or []]
    return render(request, "spark_log.html", kind=kind, item_id=item_id, lines=lines, total=body.get("total"),
                  section="spark")


@router.post("/spark/{kind}/{item_id}/kill", dependencies=[Depends(fails_as("Not killed"))])
async def kill(request: Request, kind: Kind, item_id: str, _form: dict = Depends(form_auth)) -> Response:
    livy.check_visible(request, kind, item_id)
    code, body = await _gateway(request, "DELETE", f"/{kind}/{item_id}", timeout=120)
    if code >= 400:
        raise _refusal(code, body, f"HTTP {code}", code if code < 500 else 502)
    return RedirectResponse("/spark?ok=killed", status_code=303)
