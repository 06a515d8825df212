"""`labwork notebook ...` as a user runs it (subprocesses against a real control plane)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import nbformat

from labwork.project import init_project
from labwork.processes import pid_alive
from tests.support import ControlPlane


def test_start_status_extend_logs_stop(nb_cp: ControlPlane, tmp_path: Path) -> None:
    root = init_project(tmp_path / "cliproj", "cliProj").root
    out = nb_cp.cli("notebook", "start", "--no-browser", "--hours", "2", "--idle", "2h", cwd=root)
    url = re.search(r"(http://127\.0\.0\.1:\d+/user/admin/cliProj/lab\?token=\S+)", out.stdout).group(1)
    assert httpx.get(url, timeout=30).status_code == 200
    assert "cliProj" in out.stdout and "python, JupyterLab" in out.stdout
    assert "stops when idle for 2h 00m" in out.stdout

    status = json.loads(nb_cp.cli("notebook", "status", str(root), "--json").stdout)
    assert status["state"] == "running" and status["url"] == url and status["project"]["name"] == "cliProj"
    assert status["config"]["idle"] == 7200.0
    human = nb_cp.cli("notebook", "status", cwd=root / "outputs").stdout  # found from a subfolder
    assert "running" in human and url in human and "left" in human and "stops when idle for 2h 00m" in human

    second = nb_cp.cli("notebook", "start", str(root), "--no-browser", check=False)
    assert second.returncode == 4 and "already runs" in second.stderr and str(status["port"]) in second.stderr
    other = nb_cp.cli("notebook", "start", str(root), "--no-browser", "--classic", check=False)
    assert other.returncode == 4 and "needs a stop first" in other.stderr

    listed = json.loads(nb_cp.cli("notebook", "list", "--json").stdout)
    assert status["id"] in [s["id"] for s in listed]
    assert "cliProj" in nb_cp.cli("notebook", "list").stdout

    ext = nb_cp.cli("notebook", "extend", str(root), "--hours", "3").stdout
    assert "left)" in ext
    extended = json.loads(nb_cp.cli("notebook", "status", str(root), "--json").stdout)
    assert abs(time_of(extended["deadline"]) - time_of(status["deadline"]) - 3 * 3600) < 5
    assert "no time limit" in nb_cp.cli("notebook", "extend", str(root), "--no-limit").stdout
    bad = nb_cp.cli("notebook", "extend", str(root), "--hours", "-1", check=False)
    assert bad.returncode == 2 and "hours must be more than 0" in bad.stderr

    logs = nb_cp.cli("notebook", "logs", str(root)).stdout
    assert "Jupyter Server" in logs and "time limit removed" in logs

    stopped = nb_cp.cli("notebook", "stop", str(root))
    assert "stopped" in stopped.stdout
    assert not pid_alive(status["pid"])
    followed = nb_cp.cli("notebook", "logs", str(root), "-f", timeout=60).stdout  # ends: the server stopped
    assert "server stopped: stopped by the user" in followed
    again = nb_cp.cli("notebook", "stop", str(root), check=False)
    assert again.returncode == 3 and "no Jupyter server runs" in again.stderr
    earlier = nb_cp.cli("notebook", "logs", str(root), "--server", str(status["id"])).stdout
    assert earlier == followed
    human = nb_cp.cli("notebook", "status", str(root)).stdout
    assert "stopped" in human and "stopped by the user" in human


def time_of(iso: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(iso).timestamp()


def test_bad_options_change_nothing(nb_cp: ControlPlane, tmp_path: Path) -> None:
    root = init_project(tmp_path / "badproj", "badProj").root
    cases = [
        (["--hours", "-1"], "hours must be more than 0"),
        (["--hours", "0"], "hours must be more than 0"),
        (["--hours", "2", "--no-limit"], "not both"),
        (["--config", "spark", "--property", "no equals sign"], "expected key=value"),
        (["--driver-memory", "2g"], "Spark options need --config spark"),
        (["--config", "spark", "--driver-memory", "two gigs"], "JVM size"),
        (["--config", "R"], "expected python or spark"),
    ]
    for args, expected in cases:
        proc = nb_cp.cli("notebook", "start", str(root), "--no-browser", *args, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert expected in proc.stderr, (args, proc.stderr)
    props = tmp_path / "spark.properties"
    props.write_text("# resources\nspark.sql.shuffle.partitions=4\n\noops\n")
    proc = nb_cp.cli("notebook", "start", str(root), "--config", "spark", "--properties-file", str(props),
                     "--no-browser", check=False)
    assert proc.returncode == 2 and "line 4" in proc.stderr and "oops" in proc.stderr and str(props) in proc.stderr
    status = json.loads(nb_cp.cli("notebook", "status", str(root), "--json").stdout)
    assert status["state"] == "none"
    missing = nb_cp.cli("notebook", "status", str(tmp_path / "not-a-project"), check=False)
    assert missing.returncode == 3 and "not a labwork project" in missing.stderr


def test_spark_config_recorded(nb_cp: ControlPlane, tmp_path: Path) -> None:
    root = init_project(tmp_path / "sparkproj", "sparkProj").root
    props = tmp_path / "spark.properties"
    props.write_text("spark.sql.shuffle.partitions=4\n")
    out = nb_cp.cli("notebook", "start", str(root), "--no-browser", "--no-limit", "--config", "spark",
                    "--driver-memory", "2g", "--executors", "2", "--properties-file", str(props),
                    "-P", "spark.ui.showConsoleProgress=false", "--json")
    st = json.loads(out.stdout)
    try:
        assert st["config"]["kind"] == "spark" and st["config"]["hours"] is None and st["deadline"] is None
        assert st["config"]["spark"]["driver_memory"] == "2g" and st["config"]["spark"]["executors"] == 2
        assert st["config"]["spark"]["properties"] == {"spark.hadoop.fs.permissions.umask-mode": "007",
                                                      "spark.sql.shuffle.partitions": "4",
                                                      "spark.ui.showConsoleProgress": "false"}
        environ = Path(f"/proc/{st['pid']}/environ").read_bytes().decode(errors="replace").split("\0")
        raw = next(e for e in environ if e.startswith("LABWORK_SERVER_CONFIG=")).split("=", 1)[1]
        assert json.loads(raw)["spark"]["driver_memory"] == "2g"
        human = nb_cp.cli("notebook", "status", str(root)).stdout
        assert "driver 2g" in human and "no time limit" in human
    finally:
        nb_cp.cli("notebook", "stop", str(root))


def test_recent_open_and_preview(nb_cp: ControlPlane, tmp_path: Path) -> None:
    root = init_project(tmp_path / "openproj", "openProj").root
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# Report\n<script>window.pwned=1</script>"))
    nbformat.write(nb, root / "report.ipynb")
    assert "no notebook has run" in nb_cp.cli("notebook", "recent", str(root)).stdout
    with httpx.Client(base_url=nb_cp.url, headers=nb_cp.headers(), timeout=30) as api:
        api.post("/api/kernels/launched", json={"project_path": str(root), "runconfig": "local",
                                                "notebook": "report.ipynb",
                                                "server_config": {"ui": "classic", "hours": 1}}).raise_for_status()
    recent = json.loads(nb_cp.cli("notebook", "recent", str(root), "--json").stdout)
    assert recent[0]["notebook"] == "report.ipynb" and recent[0]["server_config"]["ui"] == "classic"
    assert "report.ipynb" in nb_cp.cli("notebook", "recent", cwd=root).stdout

    opened = nb_cp.cli("notebook", "open", str(root / "report.ipynb"), "--no-browser")
    url = opened.stdout.strip().splitlines()[-1]
    assert re.match(r"http://127\.0\.0\.1:\d+/user/admin/openProj/notebooks/report\.ipynb\?token=\S+$", url), opened.stdout
    assert "started the Jupyter server" in opened.stderr
    assert httpx.get(url, timeout=30).status_code == 200
    reused = nb_cp.cli("notebook", "open", "report.ipynb", "--no-browser", cwd=root)
    assert reused.stdout.strip().splitlines()[-1] == url and "started" not in reused.stderr
    nb_cp.cli("notebook", "stop", str(root))

    out = tmp_path / "report.html"
    nb_cp.cli("notebook", "preview", str(root / "report.ipynb"), "-o", str(out))
    html = out.read_text()
    assert '<h1 id="Report">' in html and "pwned" not in html
    to_stdout = nb_cp.cli("notebook", "preview", str(root / "report.ipynb"), "-o", "-").stdout
    assert to_stdout == html
    missing = nb_cp.cli("notebook", "preview", str(root / "nope.ipynb"), check=False)
    assert missing.returncode == 3 and "no such notebook" in missing.stderr
