"""The one gateway-in-a-thread (`create_gateway_app` under uvicorn, free port), statements, waits."""
from __future__ import annotations

import time
from typing import Any

import httpx

from labwork.gateway.standalone import ThreadedGateway
from labwork.settings import GatewaySettings


def gw_settings(**over: Any) -> GatewaySettings:
    base = dict(master="local[2]", driver_memory="512m", executor_memory="512m",
                retain_finished="10m", max_sessions=8)
    base.update(over)
    return GatewaySettings(**base)


class GatewayServer(ThreadedGateway):
    """The library's gateway-in-a-thread (`create_gateway_app` under uvicorn on a free port) with
    the start/stop/client the tests use."""

    def start(self) -> GatewayServer:
        return self.__enter__()

    def stop(self) -> None:
        self.__exit__(None, None, None)

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kw)


def wait_session(client: httpx.Client, sid: Any, states: set[str] | None = None,
                 timeout: float = 240) -> dict:
    """Wait until the session leaves `starting`/`recovering` (or reaches one of `states`)."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/sessions/{sid}")
        assert r.status_code == 200, r.text
        s = r.json()
        if states is not None and s["state"] in states:
            return s
        if states is None and s["state"] not in ("not_started", "starting", "recovering"):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"session {sid} stuck in {s['state']}: {s['log'][-10:]}")
        time.sleep(0.1)


def run(client: httpx.Client, sid: Any, code: str, kind: str | None = None,
        timeout: float = 180) -> dict:
    body: dict = {"code": code}
    if kind:
        body["kind"] = kind
    r = client.post(f"/sessions/{sid}/statements", json=body)
    assert r.status_code == 201, r.text
    st = r.json()
    deadline = time.monotonic() + timeout
    while st["state"] in ("waiting", "running", "cancelling"):
        if time.monotonic() > deadline:
            raise AssertionError(f"statement stuck: {st}")
        time.sleep(0.02)
        st = client.get(f"/sessions/{sid}/statements/{st['id']}").json()
    return st


def text(st: dict) -> str:
    assert st["state"] == "available", st
    assert st["output"]["status"] == "ok", st["output"]
    return st["output"]["data"]["text/plain"]
