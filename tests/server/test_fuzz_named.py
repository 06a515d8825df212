"""The causes of the 500s issue 8 item 12 names, one by one, against a real control plane and its
/livy mount: huge integers, '²' as an id, NUL bytes and over-long names in paths, and a notebook
whose file name is not UTF-8. Each answers 400 or 404 in the error shape, never 500."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ControlPlane

HUGE = str(10**20)
ODD_IDS = ["²", "١", HUGE, "-1", "1" * 400, "%00", "a%00b", "x" * 5000]


@pytest.fixture(scope="module")
def named_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, int, Path]]:
    import nbformat

    from labwork.project import init_project

    cp = ControlPlane(tmp_path_factory.mktemp("named-home")).start()
    root = init_project(tmp_path_factory.mktemp("named") / "proj", "namedProj").root
    nbformat.write(nbformat.v4.new_notebook(), root / "fine.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), os.fsdecode(bytes(root) + b"/caf\xe9.ipynb"))
    with cp.client() as http:
        pid = http.post("/api/projects", json={"path": str(root)}).json()["id"]
    yield cp, pid, root
    cp.stop()


def _error_shape(r: httpx.Response, *codes: int) -> dict:
    assert r.status_code in codes, (r.request.method, str(r.request.url)[:200], r.status_code, r.text[:300])
    body = r.json()
    assert {"error", "msg"} <= set(body) <= {"error", "msg", "where", "hint", "details"}, body
    return body


@pytest.mark.parametrize("ref", ODD_IDS)
def test_odd_project_refs(named_cp, ref: str) -> None:
    cp, _pid, _root = named_cp
    with cp.client() as http:
        for method, path in (("GET", "/api/projects/{}"), ("GET", "/api/projects/{}/server"),
                             ("GET", "/api/projects/{}/notebooks"), ("POST", "/api/projects/{}/server/extend"),
                             ("GET", "/api/projects/{}/server/logs/download"), ("DELETE", "/api/projects/{}/server")):
            _error_shape(http.request(method, path.format(ref)), 400, 404)
        _error_shape(http.post("/api/kernels/launched", json={"project_path": ref}), 400, 404)


def test_huge_query_integers(named_cp) -> None:
    cp, pid, _root = named_cp
    with cp.client() as http:
        for params in ({"offset": HUGE}, {"server_id": HUGE}, {"server_id": "²"}, {"offset": "-5"}):
            _error_shape(http.get(f"/api/projects/{pid}/server/logs", params=params), 400, 404)
        _error_shape(http.get(f"/api/projects/{pid}/server/logs/download", params={"server_id": HUGE}), 400, 404)
        for params in ({"offset": HUGE}, {"limit": HUGE}):
            _error_shape(http.get("/api/runs", params=params), 400)
        _error_shape(http.post("/api/kernels/launched", json={"project_path": str(pid), "server_id": 10**20}), 400, 404)


def test_nul_and_long_names_in_paths(named_cp) -> None:
    cp, pid, _root = named_cp
    with cp.client() as http:
        for name in ("a\x00b.ipynb", "x" * 5000 + ".ipynb", ("d" * 250 + "/") * 30 + "n.ipynb"):
            _error_shape(http.get(f"/api/projects/{pid}/notebooks/preview", params={"path": name}), 400, 403, 404)
            _error_shape(http.post(f"/api/projects/{pid}/notebooks/open", json={"notebook": name}), 400, 403, 404)
        for path in ("outputs/a%00b", "outputs/" + "x" * 5000):
            _error_shape(http.get(f"/api/runs/r1/artifacts/{path}"), 400, 404)


def test_notebook_list_survives_a_non_utf8_file_name(named_cp) -> None:
    cp, pid, _root = named_cp
    with cp.client() as http:
        r = http.get(f"/api/projects/{pid}/notebooks")
        assert r.status_code == 200, r.text
        paths = [n["path"] for n in r.json()]
        assert "fine.ipynb" in paths and len(paths) == 2
        odd = next(p for p in paths if p != "fine.ipynb")
        r = http.get(f"/api/projects/{pid}/notebooks/preview", params={"path": odd})
        assert r.status_code in (200, 400, 404), r.text  # shown or refused, never a 500


@pytest.mark.parametrize("sid", ["²", "١", HUGE, "x" * 5000])
def test_livy_odd_ids(named_cp, sid: str) -> None:
    cp, _pid, _root = named_cp
    with cp.client() as http:
        for method, path in (("GET", "/livy/sessions/{}"), ("GET", "/livy/sessions/{}/state"),
                             ("GET", "/livy/sessions/{}/log"), ("GET", "/livy/sessions/{}/statements"),
                             ("DELETE", "/livy/sessions/{}"), ("GET", "/livy/batches/{}"),
                             ("GET", "/livy/batches/{}/log"), ("DELETE", "/livy/batches/{}")):
            r = http.request(method, path.format(sid), headers={"X-Requested-By": "test"})
            assert r.status_code in (400, 404), (method, path, r.status_code, r.text[:200])
            assert "msg" in r.json()


def test_livy_huge_paging(named_cp) -> None:
    cp, _pid, _root = named_cp
    with cp.client() as http:
        for path in ("/livy/sessions", "/livy/batches"):
            for params in ({"from": HUGE}, {"size": HUGE}, {"from": "²"}, {"from": "-" + HUGE}):
                r = http.get(path, params=params, headers={"X-Requested-By": "test"})
                assert r.status_code in (200, 400), (path, params, r.status_code, r.text[:200])


def test_register_odd_paths(named_cp) -> None:
    cp, _pid, _root = named_cp
    with cp.client() as http:
        for path in ("a\x00b", "/tmp/" + "x" * 300, "y" * 5000):
            _error_shape(http.post("/api/projects", json={"path": path}), 400, 404)


def test_livy_huge_integers_in_bodies(named_cp) -> None:
    cp, _pid, _root = named_cp
    with cp.client() as http:
        for field in ("driverCores", "executorCores", "numExecutors", "heartbeatTimeoutInSecond"):
            for value in (10**20, "²", -(10**20)):
                r = http.post("/livy/sessions", json={"kind": "pyspark", field: value},
                              headers={"X-Requested-By": "test"})
                assert r.status_code == 400 and "msg" in r.json(), (field, value, r.status_code, r.text[:200])
