"""labwork's Jupyter server extension through its HTTP API and Jupyter's event stream, on a real
server the control plane started (no browser here)."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from labwork.lab import LABEXTENSION_NAME, LABEXTENSIONS
from labwork.lab.extension import SCHEMA_ID
from labwork.lab.sources import recorded, source_hash
from labwork.notebooks.jupyter_api import lifecycle, push_lifecycle
from labwork.notebooks.lifecycle import ServerRef
from tests.support import ControlPlane
from tests.support.jupyter import jupyter

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(lab_cp: ControlPlane, make_project) -> Any:  # noqa: ANN001
    project = make_project()
    with lab_cp.client() as c:
        r = c.post(f"/api/projects/{project['id']}/server", json={"hours": 3})
        assert r.status_code == 201, r.text
        yield r.json()
        c.delete(f"/api/projects/{project['id']}/server")


def _ref(server: dict[str, Any]) -> ServerRef:
    return ServerRef(server["id"], server["base_url"], server["token"], server["deadline"])


def test_the_deadline_is_pushed_at_start(server) -> None:  # noqa: ANN001
    state = lifecycle(_ref(server))
    assert state is not None
    assert datetime.fromisoformat(state["deadline"]) == datetime.fromisoformat(server["deadline"])
    assert 0 < state["time_left_s"] <= 3 * 3600
    assert state["stopping"] is None and state["notice"] is None


def test_a_push_is_merged_and_heard_at_once_over_the_event_stream(server) -> None:  # noqa: ANN001
    async def run() -> dict[str, Any]:
        ws_url = server["base_url"].replace("http://", "ws://") + "/api/events/subscribe"
        ws = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {server['token']}"}))
        try:
            state = await asyncio.to_thread(push_lifecycle, _ref(server), {
                "notice": {"kind": "busy", "text": "a kernel has been busy for 3 h", "stop_at": None}})
            assert state is not None and state["notice"]["text"] == "a kernel has been busy for 3 h"
            while True:
                msg = json.loads(await asyncio.wait_for(ws.read_message(), 30))
                if msg.get("schema_id") == SCHEMA_ID:
                    return msg
        finally:
            ws.close()

    # in a thread of its own: the suite's sync Playwright keeps an event loop in this one
    with ThreadPoolExecutor(1) as pool:
        event = pool.submit(asyncio.run, run()).result()
    assert event["action"] == "state"  # the event's data, beside its schema_id (as JupyterLab gets it)
    assert event["changed"] == ["notice"]
    assert event["state"]["notice"]["kind"] == "busy"
    push_lifecycle(_ref(server), {"notice": None})


@pytest.mark.parametrize(("body", "where"), [
    ({"deadlin": None}, "lifecycle"),
    ({"deadline": "tomorrow"}, "lifecycle.deadline"),
    ({"warn_before_s": [-5]}, "lifecycle.warn_before_s"),
    ({"notice": {"kind": "gone", "text": "x"}}, "lifecycle.notice"),
    ({"stopping": {"id": "a", "reason": "r"}}, "lifecycle.stopping"),
    ([1, 2], "lifecycle"),
])
def test_bad_pushes_are_refused_with_where_they_went_wrong(server, body, where) -> None:  # noqa: ANN001
    with jupyter(server) as j:
        before = j.get("/labwork/lifecycle").json()
        r = j.put("/labwork/lifecycle", json=body)
        after = j.get("/labwork/lifecycle").json()
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "ConfigError" and r.json()["where"] == where
    assert after["deadline"] == before["deadline"]  # nothing changed


def test_body_that_is_not_json_is_refused(server) -> None:  # noqa: ANN001
    with jupyter(server) as j:
        r = j.put("/labwork/lifecycle", content=b"{nope", headers={"Content-Type": "application/json"})
        saved = j.post("/labwork/saved", json={"id": "x"})
        extend = j.post("/labwork/extend", json={"hours": "lots"})
    assert r.status_code == 400 and "not JSON" in r.json()["msg"]
    assert saved.status_code == 400 and saved.json()["where"] == "saved.client"
    assert extend.status_code == 400 and extend.json()["where"] == "extend"


def test_front_ends_are_counted_and_their_saves_kept(server) -> None:  # noqa: ANN001
    with jupyter(server) as j:
        j.get("/labwork/lifecycle", params={"client": "tab-1"})
        r = j.post("/labwork/saved", json={"id": "stop-1", "client": "tab-2", "saved": ["a.ipynb"], "failed": []})
    assert r.status_code == 200, r.text
    state = r.json()
    assert state["clients"] >= 2
    assert {"client": "tab-2", "id": "stop-1", "saved": ["a.ipynb"], "failed": []} in state["acks"]


def test_extend_goes_through_the_control_plane(lab_cp, server) -> None:  # noqa: ANN001
    with jupyter(server) as j:
        before = j.get("/labwork/lifecycle").json()
        r = j.post("/labwork/extend", json={"hours": 1})
    assert r.status_code == 200, r.text
    assert r.json()["time_left_s"] > before["time_left_s"] + 3500
    status = lab_cp.request("GET", f"/api/projects/{server['project']['id']}/server")
    assert status["deadline"] == r.json()["deadline"]


def test_a_server_without_the_extension_is_tolerated(lab_cp) -> None:  # noqa: ANN001
    # the control plane itself has no labwork/lifecycle: 404, logged, never raised
    plane = ServerRef(0, lab_cp.url, lab_cp.token, None)
    assert push_lifecycle(plane, {"deadline": None}) is None
    assert lifecycle(plane) is None


def test_a_stop_without_tabs_says_so_in_the_log(lab_cp, make_project) -> None:  # noqa: ANN001
    project = make_project()
    with lab_cp.client() as c:
        assert c.post(f"/api/projects/{project['id']}/server", json={"hours": 1}).status_code == 201
        c.delete(f"/api/projects/{project['id']}/server")
        log = c.get(f"/api/projects/{project['id']}/server/logs").json()["text"]
    assert "save before stop: no JupyterLab tab was open" in log
    assert "stopped by the user" in log


def test_the_committed_build_is_what_the_sources_say() -> None:
    sources = REPO / "labextension"
    if not sources.is_dir():
        pytest.skip("the front end's sources are not beside this installed package")
    assert recorded() == source_hash(sources), "the prebuilt extension is stale: run 'make labextension'"
    built = json.loads((LABEXTENSIONS / LABEXTENSION_NAME / "package.json").read_text())
    assert built["name"] == LABEXTENSION_NAME
    assert (LABEXTENSIONS / LABEXTENSION_NAME / "static" / built["jupyterlab"]["_build"]["load"]
            .removeprefix("static/")).is_file()
