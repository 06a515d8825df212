"""The process contract with real Jupyter servers: a port taken between the check and Jupyter's
bind is retried on another; state hands a running server to a new `LocalProcess`; the base
layer's `tail`; the REST client against a real server and a closed port."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from labwork.notebooks.jupyter_api import JupyterApi
from labwork.notebooks.manager import ServerManager
from labwork.notebooks.spawner import UNKNOWN_EXIT, LocalProcess
from labwork.processes import free_port, pid_alive, port_free, tail
from labwork.project import init_project
from labwork.settings import load_settings
from labwork.store.db import Store
from tests.support import wait_for
from tests.support.jupyter import kill_servers


class PortThief(ServerManager):
    """A manager whose first pick of a port is taken by another program right after the check
    (a real listening socket), the way a concurrent program can win the race to bind it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.held: list[socket.socket] = []
        self.steal = True

    def new_process(self, server_id: int, first_port: int) -> LocalProcess:
        proc = super().new_process(server_id, first_port)
        pick = proc.pick_port

        def pick_then_steal(tried: set[int]) -> int:
            port = pick(tried)
            if not tried and self.steal:
                assert port_free("127.0.0.1", port)  # the check passed...
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind(("127.0.0.1", port))  # ...and then someone else binds it
                sock.listen()
                self.held.append(sock)
            return port

        proc.pick_port = pick_then_steal
        return proc


@pytest.fixture
def thief(tmp_path: Path):
    home = tmp_path / "home"
    settings = load_settings(flags={"home": home, "jupyter_start_timeout_s": 90}, environ={})
    store = Store(settings.db_url)
    manager = PortThief(settings, store, url="http://127.0.0.1:1")
    yield manager
    for sock in manager.held:
        sock.close()
    kill_servers(home)
    store.dispose()


def test_a_port_taken_before_jupyter_binds_it_is_retried_on_another(thief: PortThief, tmp_path: Path) -> None:
    root = init_project(tmp_path / "race", "race").root
    server = thief.start(str(root), {"hours": 1})
    stolen = thief.held[0].getsockname()[1]
    assert server["state"] == "running"
    assert server["port"] != stolen and server["base_url"] == f"http://127.0.0.1:{server['port']}"
    with JupyterApi(server["base_url"], server["token"]) as api:
        assert api.answers()
    log = Path(server["log_path"]).read_text()
    assert f"port {stolen} was taken by another program" in log
    assert "retrying on another port (attempt 2 of 3)" in log
    assert f"server running at http://127.0.0.1:{server['port']}" in log
    stopped = thief.stop(str(root))
    assert stopped["state"] == "stopped" and "shut down cleanly" in Path(server["log_path"]).read_text()


def test_state_hands_a_running_server_to_a_new_process(thief: PortThief, tmp_path: Path) -> None:
    """What a restarted control plane does: `load_state` of the recorded pid and port; a wrong
    port (a reused pid) is not taken for our server; `stop` ends it and its kernels."""
    root = init_project(tmp_path / "st", "st").root
    thief.steal = False  # no theft here: the first pick is used as it is
    server = thief.start(str(root), {"hours": 1})
    with JupyterApi(server["base_url"], server["token"]) as api:
        assert api.kernels() == []
        assert api.answers() and api.kernelspecs()  # one kept-open connection, request after request
        other = LocalProcess()
        other.load_state({"pid": server["pid"], "port": server["port"] + 1})
        assert other.poll() == UNKNOWN_EXIT
        adopted = LocalProcess()
        adopted.load_state({"pid": server["pid"], "port": server["port"]})
        assert adopted.get_state() == {"pid": server["pid"], "port": server["port"]}
        assert adopted.poll() is None
        assert adopted.stop(30.0, ask=lambda: api.shutdown()) is True
    wait_for(lambda: not pid_alive(server["pid"]), timeout=30)
    assert adopted.poll() is not None


def test_jupyter_api_on_a_closed_port_answers_nothing() -> None:
    with JupyterApi(f"http://127.0.0.1:{free_port()}", "x", timeout=1) as api:
        assert api.answers() is False
        assert api.kernels() == [] and api.sessions() == [] and api.kernelspecs() == {}
        assert api.shutdown(timeout=1) is not None


def test_jupyter_api_on_a_port_that_never_answers_gives_up_and_reconnects() -> None:
    """A server that has bound its port but does not serve yet (Jupyter while its extensions load):
    a try times out as not answering, and the next try opens a new connection."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        with JupyterApi(f"http://127.0.0.1:{port}", "x", timeout=5) as api:
            assert api.answers(timeout=0.2) is False
            assert api.answers(timeout=0.2) is False
        listener.settimeout(5)
        first, _ = listener.accept()
        second, _ = listener.accept()  # the timed-out connection was dropped, not reused
        with first, second:
            assert first.recv(4096).startswith(b"GET /api/status ")
            assert second.recv(4096).startswith(b"GET /api/status ")


def test_tail_reads_the_end_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert tail(path, 3) == ["line 997", "line 998", "line 999"]
    window = tail(path, -1, max_bytes=100)
    assert window[-1] == "line 999" and all(line.startswith("line ") for line in window)
    assert len(window) < 100 and "".join(window).count("line") == len(window)  # no partial first line
    assert tail(tmp_path / "gone", 5) == []
