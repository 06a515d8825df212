"""The Livy REST API as a self-contained FastAPI app (mounted at /livy or served alone)."""
from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from labwork.gateway.core import Gateway
from labwork.gateway.protocol import (VERSION, LivyError, bad, log_slice, paging, parse_create,
                                      parse_statement)
from labwork.settings import GatewaySettings

log = logging.getLogger("labwork.gateway")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":")).encode("utf-8")


def jresp(obj: Any, status: int = 200) -> Response:
    return Response(_dumps(obj), status_code=status, media_type="application/json")


def _basic_credentials(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        text = base64.b64decode(header[6:].strip()).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"),
                                  expected.encode("utf-8", "surrogateescape"))


class _Guard:
    """Pure ASGI middleware: authentication and the CSRF header check, before any routing."""

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
        header = request.headers.get("authorization", "")
        creds = _basic_credentials(header)
        user = creds[0] if creds else None
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
            if password:
                if creds and _same(creds[0], self.settings.auth_user or "") \
                        and _same(creds[1], password):
                    return True, user
                if header.lower().startswith("bearer ") and _same(header[7:].strip(), password):
                    return True, self.settings.auth_user
        return False, None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        ok, user = self._check(request)
        if not ok:
            resp = Response(_dumps({"msg": "Authentication required (HTTP Basic or a bearer token)."}),
                            status_code=401, media_type="application/json",
                            headers={"WWW-Authenticate": 'Basic realm="livy"'})
            await resp(scope, receive, send)
            return
        if self.settings.csrf_protection and scope["method"] not in ("GET", "HEAD", "OPTIONS") \
                and not request.headers.get("x-requested-by"):
            resp = Response(_dumps({"msg": "Missing Required Header for CSRF protection."}),
                            status_code=400, media_type="application/json")
            await resp(scope, receive, send)
            return
        scope.setdefault("state", {})["livy_user"] = user
        await self.app(scope, receive, send)


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad(f"the request body is not valid JSON: {exc}") from exc


def create_gateway_app(settings: GatewaySettings, *, state_dir: Path,
                       authenticate: Callable[[Request], bool] | None = None,
                       on_statement: Callable[[dict, dict], None] | None = None) -> FastAPI:
    """A FastAPI app speaking Livy at its root. `app.state.gateway` is the `Gateway`; the app's
    lifespan starts and stops it (a mounted app has no lifespan: call `gateway.start()` /
    `gateway.stop()` from the parent's hooks; requests also start it lazily)."""
    gw = Gateway(settings, Path(state_dir), on_statement=on_statement)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await gw.ensure_started()
        try:
            yield
        finally:
            await gw.stop()

    app = FastAPI(title="labwork Spark gateway (Livy)", lifespan=lifespan, openapi_url=None,
                  docs_url=None, redoc_url=None)
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
                      "revision": None, "branch": None, "date": None, "url": None})

    def listing(objects, request: Request) -> dict:  # noqa: ANN001 - sessions or batches
        """Livy's paged list (`from`, `size`); batches are listed under "sessions" too, as Livy does."""
        frm, size = paging(request.query_params)
        items = sorted(objects, key=lambda o: o.id)
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
        s = gw.create_session(req, user(request))
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
        return jresp(gw.create_batch(req, user(request)).to_json(), 201)

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
