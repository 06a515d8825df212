"""One gateway (uvicorn in a thread, free port) and as few Spark drivers as possible, shared."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.gateway import GatewayServer, gw_settings, wait_session


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    state = tmp_path_factory.mktemp("gateway-state")
    seen: list[tuple[dict, dict]] = []
    gw = GatewayServer(gw_settings(), state,
                       on_statement=lambda s, st: seen.append((s, st))).start()
    gw.seen = seen  # type: ignore[attr-defined]
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def sessions(gateway: GatewayServer) -> dict[str, int]:
    """The shared drivers, created together so they start in parallel: a PySpark session made by
    the `livy` client, a `sql` session and a `shared` one (Scala, SQL and Python statements)."""
    from livy import LivySession, SessionKind
    py = LivySession.create(gateway.url, kind=SessionKind.PYSPARK, name="shared-py",
                            driver_memory="512m")
    sql = LivySession.create(gateway.url, kind=SessionKind.SQL)
    with gateway.client() as c:
        r = c.post("/sessions", json={"kind": "shared", "name": "shared-mixed",
                                      "conf": {"spark.labwork.test": "yes"}})
        assert r.status_code == 201, r.text
        mixed = r.json()["id"]
        for sid in (py.session_id, sql.session_id, mixed):
            s = wait_session(c, sid)
            assert s["state"] == "idle", s
    return {"pyspark": py.session_id, "sql": sql.session_id, "shared": mixed}
