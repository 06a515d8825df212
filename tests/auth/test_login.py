"""Log-in: user + password for a session that carries the user, log-in attempts slowed per user
and per address (429 with Retry-After, no timed assertion), and the trusted proxy header honoured
only from the configured proxy address (127.0.0.2 here; from 127.0.0.1 it is ignored and logged)."""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import ControlPlane

CONFIG = """
[auth]
authenticator = "header"
trusted_proxies = ["127.0.0.2"]
login_attempts = 3
login_window_s = 3600
"""


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("login-home"), config=CONFIG).start()
    for name in ("alice", "bob", "carol"):
        plane.cli("user", "add", name, "--password-stdin", input_text=f"{name}-password\n")
    yield plane
    plane.stop()


def from_address(cp: ControlPlane, address: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127.x address reaches the plane)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=cp.url, transport=transport, timeout=60, follow_redirects=False)


def log_in(c: httpx.Client, user: str, password: str) -> httpx.Response:
    return c.post("/login", data={"user": user, "password": password, "next": "/"})


def test_password_log_in_makes_a_session_of_that_user_and_log_out_ends_it(cp: ControlPlane) -> None:
    with from_address(cp, "127.0.0.3") as c:
        assert log_in(c, "alice", "wrong-password").status_code == 401
        r = log_in(c, "alice", "alice-password")
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert "alice-password" not in r.headers["set-cookie"]
        assert c.get("/api/me").json()["name"] == "alice"
        page = c.get("/").text
        assert 'id="whoami">alice<' in page
        csrf = page.split('data-csrf="', 1)[1].split('"', 1)[0]
        r = c.post("/logout", data={"csrf_token": csrf}, headers={"Origin": cp.url})
        assert r.status_code == 303
        assert c.get("/api/me").status_code == 401
        # the token log-in still works, and gives the admin
        r = c.post("/login", data={"token": cp.token, "next": "/"})
        assert r.status_code == 303 and c.get("/api/me").json()["name"] == "admin"


def test_a_log_in_flood_is_slowed_per_user(cp: ControlPlane) -> None:
    with from_address(cp, "127.0.0.4") as c:
        for _ in range(3):
            assert log_in(c, "bob", "guess").status_code == 401
    with from_address(cp, "127.0.0.5") as c:  # another address: the user's own limit holds
        r = log_in(c, "bob", "bob-password")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "Too many failed log-ins" in r.text
        assert log_in(c, "alice", "alice-password").status_code == 303  # others are not slowed


def test_a_log_in_flood_is_slowed_per_address(cp: ControlPlane) -> None:
    with from_address(cp, "127.0.0.6") as c:
        for name in ("x1", "x2", "x3"):  # unknown names count too
            assert log_in(c, name, "guess").status_code == 401
        r = log_in(c, "carol", "carol-password")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        r = c.post("/login", data={"token": "lw_guess", "next": "/"})
        assert r.status_code == 429
    with from_address(cp, "127.0.0.7") as c:
        assert log_in(c, "carol", "carol-password").status_code == 303


def test_trusted_header_only_from_the_proxy_address(cp: ControlPlane) -> None:
    with from_address(cp, "127.0.0.2") as proxy:
        r = proxy.get("/api/me", headers={"X-Forwarded-User": "alice", "Accept": "application/json"})
        assert r.status_code == 200 and r.json()["name"] == "alice"
        assert proxy.get("/", headers={"X-Forwarded-User": "alice"}).status_code == 200
        # an unknown user named by the proxy is not let in
        assert proxy.get("/api/me", headers={"X-Forwarded-User": "mallory"}).status_code == 401
        # a state change through the proxy must come from labwork's own pages (like a cookie)
        r = proxy.post("/api/projects", json={"path": "/nowhere"}, headers={"X-Forwarded-User": "alice"})
        assert r.status_code == 403
    with from_address(cp, "127.0.0.1") as other:
        r = other.get("/api/me", headers={"X-Forwarded-User": "alice"})
        assert r.status_code == 401
        assert other.get("/", headers={"X-Forwarded-User": "admin"}).status_code == 303  # to /login
    log = cp.log_tail(200_000)
    assert "ignored the x-forwarded-user header from 127.0.0.1" in log
