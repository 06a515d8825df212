"""The Livy REST API as a self-contained FastAPI app (mounted at /livy or served alone)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from labwork.access import SAFE_METHODS, cross_site_problem, json_type_problem, presented_secret, same_secret
from labwork.gateway.arrow import ARROW_STREAM_TYPE, CAPABILITY, result_stream, upload
from labwork.gateway.gateway import Gateway
from labwork.gateway.visibility import LivyAccess, check_create, guard, only_visible
from labwork.gateway.protocol import (VERSION, LivyError, bad, log_slice, paging, parse_arrow_request,
                                      parse_create, parse_statement, parse_upload_params)
from labwork.settings import GatewaySettings

log = logging.getLogger("labwork.gateway")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":")).encode("utf-8")


def jresp(obj: Any, status: int = 200) -> Response:
    return Response(_dumps(obj), status_code=status, media_type="application/json")


def _refusal(status: int, msg: str, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps({"msg": msg}), status_code=status, media_type="application/json",
                    headers=headers)


class _Guard:
    """Pure ASGI middleware: authentication and the CSRF checks, before any routing.

    * A state-changing request from another site (Origin/Referer naming another server) is
      refused, 403, whatever it carries (`labwork.access.cross_site_problem`).
    * `authenticate(request)` decides who may call: the standalone gateway checks its token (bearer
      or Basic password), the control plane's mount checks what its `AccessGuard` found. With
      `[gateway] auth_user` (+ `auth_password_env`) that user's Basic password (or the password as
      a bearer token) is accepted too. Neither: open (embedded gateways in tests and benchmarks).
    * `[gateway] csrf_protection`: Livy's check, a state-changing request needs `X-Requested-By`
      (a page on another site cannot add it without a CORS preflight, which is never granted).
    """

    def __init__(self, app, *, settings: GatewaySettings,
                 authenticate: Callable[[Request], bool] | None) -> None:
        self.app = app
        self.settings = settings
        self.authenticate = authenticate

    def _password(self) -> str | None:
        env = self.settings.auth_password_env
        return os.environ.get(env) if env else None

    def _check(self, request: Request) -> tuple[bool, str | None]:
        """(allowed, user name)."""
        secret, user, _present = presented_secret(request.headers)
        basic_on = bool(self.settings.auth_user)
        if self.authenticate is None and not basic_on:
            return True, user
        if self.authenticate is not None:
            try:
                if self.authenticate(request):
                    return True, user
            except Exception:  # noqa: BLE001
                log.exception("gateway authenticate callback failed")
        if basic_on:
            password = self._password()
            if password and same_secret(secret, password) and (
                    user is None or same_secret(user, self.settings.auth_user)):
                return True, user or self.settings.auth_user
        return False, None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        method = scope["method"]
        problem = cross_site_problem(method, request.headers, ambient_only=False)
        if problem:
            await _refusal(403, f"Cross-site request refused: {problem}.")(scope, receive, send)
            return
        ok, user = self._check(request)
        if not ok:
            await _refusal(401, "Authentication required: send the gateway's token as a bearer token "
                           "or as the HTTP Basic password.",
                           headers={"WWW-Authenticate": 'Basic realm="livy"'})(scope, receive, send)
            return
        if self.settings.csrf_protection and method not in SAFE_METHODS \
                and not request.headers.get("x-requested-by"):
            await _refusal(400, "Missing Required Header for CSRF protection.")(scope, receive, send)
            return
        scope.setdefault("state", {})["livy_user"] = user
        await self.app(scope, receive, send)


async def _body(request: Request) -> Any:
    """The JSON body; an empty one (statement cancel, a bare POST) is `{}` and needs no
    Content-Type. Any other body must say it is JSON: 415 otherwise (a `text/plain` body is what
    a page on another site can send without asking)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    problem = json_type_problem(request.headers.get("content-type"))
    if problem:
        raise LivyError(415, problem)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad(f"the request body is not valid JSON: {exc}") from exc


def create_gateway_app(settings: GatewaySettings, *, state_dir: Path,
                       authenticate: Callable[[Request], bool] | None = None,
                       on_statement: Callable[[dict, dict], None] | None = None,
                       access: LivyAccess | None = None) -> FastAPI:
    """A FastAPI app speaking Livy at its root. `app.state.gateway` is the `Gateway`; the app's
    lifespan starts and stops it (a mounted app has no lifespan: call `gateway.start()` /
    `gateway.stop()` from the parent's hooks; requests also start it lazily). `access` decides
    who owns and who sees a session (`labwork.gateway.visibility`); None: the standalone rules."""
    gw = Gateway(settings, Path(state_dir), on_statement=on_statement)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await gw.ensure_started()
        try:
            yield
        finally:
            await gw.stop()

    # who may see which session: one check for every route naming one (labwork.gateway.visibility)
    app = FastAPI(title="labwork Spark gateway (Livy)", lifespan=lifespan, openapi_url=None,
                  docs_url=None, redoc_url=None, dependencies=[Depends(guard(gw, access))])
    app.state.gateway = gw
    app.add_middleware(_Guard, settings=settings, authenticate=authenticate)

    @app.exception_handler(LivyError)
    async def _livy_error(_r: Request, exc: LivyError) -> Response:
        return jresp({"msg": exc.msg}, exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_r: Request, exc: StarletteHTTPException) -> Response:
        return jresp({"msg": str(exc.detail)}, exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_r: Request, exc: Exception) -> Response:
        log.exception("gateway error")
        return jresp({"msg": f"internal error: {type(exc).__name__}: {exc}"}, 500)

    def user(request: Request) -> str | None:
        return request.scope.get("state", {}).get("livy_user")

    async def owner_of_new(request: Request, body: Any, req) -> str | None:  # noqa: ANN001
        """The owner of what `req` creates, after the proxyUser and project checks."""
        asked = [request.query_params.get("doAs"), body.get("proxyUser") if isinstance(body, dict) else None]
        return await asyncio.to_thread(check_create, request, req, [str(a) for a in asked if a],
                                       access, user(request))

    # -- general ---------------------------------------------------------------------------------
    @app.get("/")
    async def root() -> Response:
        await gw.ensure_started()
        return jresp({"name": "labwork Spark gateway", "version": VERSION,
                      "sessions": len(gw.sessions), "batches": len(gw.batches),
                      "master": settings.master})

    @app.get("/version")
    async def version() -> Response:
        import pyspark
        return jresp({"version": VERSION, "spark": pyspark.__version__, "user": None,
                      "revision": None, "branch": None, "date": None, "url": None,
                      "labwork": dict(CAPABILITY) if settings.arrow_results else {}})

    def listing(objects, request: Request) -> dict:  # noqa: ANN001 - sessions or batches
        """Livy's paged list (`from`, `size`); batches are listed under "sessions" too, as Livy does."""
        frm, size = paging(request.query_params)
        items = sorted(only_visible(objects, request, access), key=lambda o: o.id)
        page = items[frm:frm + size] if size >= 0 else items[frm:]
        return {"from": frm, "total": len(items), "sessions": [o.to_json() for o in page]}

    # -- sessions --------------------------------------------------------------------------------
    @app.get("/sessions")
    async def list_sessions(request: Request) -> Response:
        await gw.ensure_started()
        return jresp(listing(gw.sessions.values(), request))

    @app.post("/sessions")
    async def create_session(request: Request) -> Response:
        await gw.ensure_started()
        body = await _body(request)
        req = parse_create(body, batch=False, allowed_paths=settings.allowed_local_paths,
                           proxy_user=request.query_params.get("doAs"))
        s = gw.create_session(req, await owner_of_new(request, body, req))
        return jresp(s.to_json(), 201)

    @app.get("/sessions/{sid}")
    async def get_session(sid: str) -> Response:
        await gw.ensure_started()
        return jresp(gw.lookup(sid).to_json())

    @app.get("/sessions/{sid}/state")
    async def session_state(sid: str) -> Response:
        await gw.ensure_started()
        s = gw.lookup(sid)
        return jresp({"id": s.id, "state": s.state})

    @app.delete("/sessions/{sid}")
    async def delete_session(sid: str) -> Response:
        await gw.ensure_started()
        await gw.delete_session(gw.lookup(sid))
        return jresp({"msg": "deleted"})

    @app.get("/sessions/{sid}/log")
    async def session_log(sid: str, request: Request) -> Response:
        await gw.ensure_started()
        s = gw.lookup(sid)
        frm, total, lines = log_slice(s.all_log(), request.query_params)
        return jresp({"id": s.id, "from": frm, "total": total, "log": lines})

    @app.get("/sessions/{sid}/statements")
    async def list_statements(sid: str, request: Request) -> Response:
        await gw.ensure_started()
        s = gw.lookup(sid)
        frm, size = paging(request.query_params, default_size=1_000_000)
        sts = s.statements[frm:frm + size]
        for st in sts:
            if st.state == "running":
                await s.refresh_progress(st)
        return jresp({"total_statements": len(s.statements),
                      "statements": [st.to_json() for st in sts]})

    @app.post("/sessions/{sid}/statements")
    async def submit(sid: str, request: Request) -> Response:
        await gw.ensure_started()
        s = gw.lookup(sid)
        body = await _body(request)
        code, kind = parse_statement(body, s.kind)
        if kind == "spark" and s.kind not in ("spark", "shared"):
            raise bad("kind: Scala statements need a 'spark' or 'shared' session")
        return jresp(s.submit(code, kind).to_json(), 201)

    def _statement(s, stid: str):
        try:
            n = int(stid)
        except ValueError:
            raise LivyError(404, f"Statement '{stid}' not found in session {s.id}.") from None
        if not 0 <= n < len(s.statements):
            raise LivyError(404, f"Statement '{stid}' not found in session {s.id}.")
        return s.statements[n]

    @app.get("/sessions/{sid}/statements/{stid}")
    async def get_statement(sid: str, stid: str) -> Response:
        await gw.ensure_started()
        s = gw.lookup(sid)
        st = _statement(s, stid)
        if st.state == "running":
            await s.refresh_progress(st)
        return jresp(st.to_json())

    @app.post("/sessions/{sid}/statements/{stid}/cancel")
    async def cancel(sid: str, stid: str) -> Response:
        await gw.ensure_started()
        s = gw.lookup(sid)
        s.cancel(_statement(s, stid))
        return jresp({"msg": "canceled"})

    @app.post("/sessions/{sid}/completion")
    async def completion(sid: str, request: Request) -> Response:
        await gw.ensure_started()
        s = gw.lookup(sid)
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad("the request body must be a JSON object")
        unknown = sorted(set(body) - {"code", "kind", "cursor"})
        if unknown:
            raise bad(f"unknown field '{unknown[0]}' (expected code, kind, cursor)")
        code = body.get("code")
        if not isinstance(code, str):
            raise bad("code: expected a string")
        cursor = body.get("cursor", len(code))
        try:
            cursor = int(cursor)
        except (TypeError, ValueError):
            raise bad("cursor: expected an integer") from None
        _c, kind = parse_statement({"code": code, "kind": body.get("kind")}, s.kind)
        candidates: list[str] = []
        if kind in ("pyspark", "spark") and s.driver is not None and s.state in ("idle", "busy"):
            candidates = await s.driver.complete(code, max(0, min(cursor, len(code))), kind=kind)
        return jresp({"candidates": candidates})

    # -- results as Arrow (labwork's own; advertised in /version) ---------------------------------
    def arrow_session(sid: str):
        if not settings.arrow_results:
            raise LivyError(404, "Arrow results are switched off on this gateway "
                                 "(gateway.arrow_results = false)")
        return gw.lookup(sid)

    @app.post("/sessions/{sid}/arrow")
    async def arrow_result(sid: str, request: Request) -> Response:
        """Stage a query's or a DataFrame's result (a statement of kind `arrow`)."""
        await gw.ensure_started()
        s = arrow_session(sid)
        req = parse_arrow_request(await _body(request), s.kind)
        req["max_bytes"] = settings.max_result_bytes
        return jresp(s.submit(json.dumps(req), "arrow").to_json(), 201)

    @app.get("/sessions/{sid}/statements/{stid}/arrow")
    async def arrow_stream(sid: str, stid: str) -> Response:
        """The staged result as an Arrow IPC stream, streamed through (once)."""
        await gw.ensure_started()
        s = arrow_session(sid)
        st = _statement(s, stid)
        if st.kind != "arrow":
            raise LivyError(404, f"statement {st.id} is not an Arrow result (POST /sessions/"
                                 f"{s.id}/arrow makes one)")
        if st.state != "available":
            raise LivyError(409, f"statement {st.id} is {st.state}, not available")
        out = st.output or {}
        if out.get("status") != "ok":
            raise LivyError(409, f"statement {st.id} failed: {out.get('ename')}: {out.get('evalue')}")
        head, chunks = await result_stream(s.driver, st.id)
        return StreamingResponse(chunks, media_type=ARROW_STREAM_TYPE,
                                 headers={"X-Labwork-Rows": str(head.get("rows", "")),
                                          "X-Labwork-Bytes": str(head.get("bytes", ""))})

    @app.post("/sessions/{sid}/arrow/upload")
    async def arrow_upload(sid: str, request: Request) -> Response:
        """An Arrow IPC stream in, bound to `?name=` by a statement of kind `arrow`."""
        await gw.ensure_started()
        s = arrow_session(sid)
        mime = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if mime != ARROW_STREAM_TYPE:
            raise LivyError(415, f"the upload must be an Arrow IPC stream: send Content-Type: "
                                 f"{ARROW_STREAM_TYPE} (got {mime or 'none'!r})")
        req = parse_upload_params(request.query_params, s.kind)
        if s.finished or s.driver is None:
            raise bad(f"Session '{s.id}' is {s.state}; it cannot take uploads")
        head = await upload(s.driver, request.stream(), settings.max_result_bytes)
        req["upload"] = head["upload"]
        return jresp(s.submit(json.dumps(req), "arrow").to_json(), 201)

    # -- batches ---------------------------------------------------------------------------------
    @app.get("/batches")
    async def list_batches(request: Request) -> Response:
        await gw.ensure_started()
        return jresp(listing(gw.batches.values(), request))

    @app.post("/batches")
    async def create_batch(request: Request) -> Response:
        await gw.ensure_started()
        body = await _body(request)
        req = parse_create(body, batch=True, allowed_paths=settings.allowed_local_paths,
                           proxy_user=request.query_params.get("doAs"))
        return jresp(gw.create_batch(req, await owner_of_new(request, body, req)).to_json(), 201)

    @app.get("/batches/{bid}")
    async def get_batch(bid: str) -> Response:
        await gw.ensure_started()
        return jresp(gw.lookup_batch(bid).to_json())

    @app.get("/batches/{bid}/state")
    async def batch_state(bid: str) -> Response:
        await gw.ensure_started()
        b = gw.lookup_batch(bid)
        return jresp({"id": b.id, "state": b.state})

    @app.get("/batches/{bid}/log")
    async def batch_log(bid: str, request: Request) -> Response:
        await gw.ensure_started()
        b = gw.lookup_batch(bid)
        frm, total, lines = log_slice(b.all_log(), request.query_params)
        return jresp({"id": b.id, "from": frm, "total": total, "log": lines})

    @app.delete("/batches/{bid}")
    async def delete_batch(bid: str) -> Response:
        await gw.ensure_started()
        await gw.delete_batch(gw.lookup_batch(bid))
        return jresp({"msg": "deleted"})

    return app
