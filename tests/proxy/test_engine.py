"""The proxy engine (labwork.proxy) in front of a real Jupyter server started with the proxied
prefix as its base_url: HTTP both ways (the contents API's save and read, a streamed download), a
kernel's websocket running `1+1`, the headers that stay behind (labwork's cookie and credentials;
the upstream's login cookie), redirects kept on the proxy's origin, and a clear 503 when the upstream
is gone. The proxy is served by uvicorn in a thread, as the control plane serves it."""
from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websocket  # websocket-client

from labwork.proxy.app import Proxy
from labwork.proxy.upstream import Upstream
from tests.support import free_port, wait_for
from tests.support.asgi import proxy_app, serve_asgi
from tests.support.jupyter import execute_result

PREFIX = "/user/alice/p/"


@pytest.fixture(scope="module")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("proxied")
    port, token = free_port(), secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_TOKEN", "LABWORK_"))}
    env["JUPYTER_TOKEN"] = token
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
                             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.base_url={PREFIX}", f"--ServerApp.root_dir={root}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    origin = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{origin}{PREFIX}api/status", headers={"Authorization": f"token {token}"},
                             timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    try:
        wait_for(up, timeout=120, what="the Jupyter server")
        yield {"origin": origin, "token": token, "root": root}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def proxy(jupyter_server: dict) -> Iterator[str]:
    """The engine mounted at /user, resolving everything to the Jupyter server (or, under
    /user/gone/, to a port nobody listens on)."""
    dead = f"http://127.0.0.1:{free_port()}"

    async def resolve(scope) -> Upstream:
        path = scope["path"]
        origin = dead if path.startswith("/user/gone/") else jupyter_server["origin"]
        return Upstream(origin=origin, path=path, what="test server",
                        headers=(("authorization", f"token {jupyter_server['token']}"),),
                        drop_cookies=("username-",))
    with serve_asgi(proxy_app(user=Proxy(resolve))) as url:
        yield url


def test_http_both_ways_through_the_prefix(proxy: str) -> None:
    with httpx.Client(base_url=proxy + PREFIX, timeout=60) as c:
        assert c.get("api/status").status_code == 200  # the proxy added the token
        body = {"type": "file", "format": "text", "content": "hello through the proxy\n"}
        assert c.put("api/contents/hello.txt", json=body).status_code in (200, 201)
        got = c.get("api/contents/hello.txt", params={"content": "1"}).json()
        assert got["content"] == "hello through the proxy\n"


def test_a_large_download_and_upload_stream_intact(proxy: str, jupyter_server: dict) -> None:
    blob = os.urandom(8 << 20)
    (jupyter_server["root"] / "big.bin").write_bytes(blob)
    with httpx.Client(base_url=proxy + PREFIX, timeout=120) as c:
        with c.stream("GET", "files/big.bin") as r:
            assert r.status_code == 200
            assert b"".join(r.iter_bytes()) == blob
        up = {"type": "file", "format": "base64", "content": base64.b64encode(blob).decode()}
        assert c.put("api/contents/up.bin", json=up).status_code in (200, 201)
    assert (jupyter_server["root"] / "up.bin").read_bytes() == blob


def test_encoded_paths_reach_the_server_as_the_browser_sent_them(proxy: str, jupyter_server: dict) -> None:
    """The path goes up still percent-encoded: a file named with a space and a percent sign is
    saved and fetched through the proxy, and an encoded line break stays in the path (a 404 of
    the server's), never a header of the request that goes up."""
    with httpx.Client(base_url=proxy + PREFIX, timeout=60) as c:
        body = {"type": "file", "format": "text", "content": "odd name\n"}
        assert c.put("api/contents/a%20b%25c.txt", json=body).status_code in (200, 201)
        assert (jupyter_server["root"] / "a b%c.txt").read_text() == "odd name\n"
        r = c.get("files/a%20b%25c.txt")
        assert r.status_code == 200 and r.text == "odd name\n"
        r = c.get("files/x%0D%0AX-Injected:%20yes")
        assert r.status_code == 404 and "x-injected" not in r.headers


def test_labworks_cookie_and_credentials_stay_behind_and_the_login_cookie_never_comes_back(
        proxy: str, jupyter_server: dict) -> None:
    """The upstream sees neither labwork's session cookie nor the caller's Authorization; a
    Jupyter login cookie (`username-…`) the upstream sets never reaches the browser."""
    with httpx.Client(base_url=proxy + PREFIX, timeout=60) as c:
        r = c.get("api/me", headers={"Authorization": "Bearer lw_not_for_jupyter",
                                     "Cookie": "labwork_session_1=secret; _xsrf=keep"})
        assert r.status_code == 200, r.text  # the caller's bearer was replaced by the server's token
        assert not any(v.lower().startswith("username-") for v in r.headers.get_list("set-cookie"))
        # without the proxy's token, the server would refuse: the credential came from the proxy
        assert httpx.get(f"{jupyter_server['origin']}{PREFIX}api/me", timeout=10).status_code == 403


def test_redirects_stay_on_the_proxys_origin(proxy: str) -> None:
    r = httpx.get(proxy + PREFIX, timeout=30, follow_redirects=False)  # to the default_url
    assert r.status_code in (301, 302, 303, 307, 308)
    location = r.headers["location"]
    assert location.startswith(PREFIX) or location.startswith(proxy), location
    page = httpx.get(proxy + PREFIX + "lab", timeout=60)  # JupyterLab's page, its links under the prefix
    assert page.status_code == 200 and f"{PREFIX}static/" in page.text


def test_a_kernel_runs_one_plus_one_over_the_proxied_websocket(proxy: str) -> None:
    with httpx.Client(base_url=proxy + PREFIX, timeout=60) as c:
        kernel = c.post("api/kernels", json={"name": "python3"}).json()
    try:
        ws = websocket.create_connection(f"{proxy.replace('http', 'ws', 1)}{PREFIX}api/kernels/{kernel['id']}/channels",
                                         timeout=60)
        try:
            result = execute_result(ws, "1+1")
            assert result == "2"
        finally:
            ws.close()
    finally:
        httpx.delete(f"{proxy}{PREFIX}api/kernels/{kernel['id']}", timeout=60)


def test_an_upstream_that_is_gone_is_a_clear_503(proxy: str) -> None:
    r = httpx.get(f"{proxy}/user/gone/p/api/status", headers={"Accept": "application/json"}, timeout=30)
    assert r.status_code == 503
    assert "test server is not answering" in r.json()["msg"]
    with pytest.raises(websocket.WebSocketException):
        websocket.create_connection(f"{proxy.replace('http', 'ws', 1)}/user/gone/p/api/kernels/x/channels",
                                    timeout=30).recv()
