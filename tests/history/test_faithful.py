"""Nothing a kernel logs is lost: NaN, infinities and NUL characters from a real kernel on SQLite and
PostgreSQL, records that cannot be stored refused alone into the dead-letter file, and every file
run history writes private to its owner."""
from __future__ import annotations

import json
import math
import stat
import uuid
from pathlib import Path

import httpx

from tests.support import ControlPlane, wait_for
from tests.support.kernels import kernel_env, spool_records


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_real_kernel_logs_nan_inf_and_nul(db_url, labwork_home, iris_dir, kernels):
    """The kernel logs while the control plane is down (spooled, files 0600), then it starts and
    replays: every cell and value lands, shown as NaN/Infinity, NUL shown as U+2400."""
    cp = ControlPlane(labwork_home, db=db_url)
    env = kernel_env(labwork_home, iris_dir, url=cp.url, notebook=str(iris_dir / "nan.ipynb"), history=True)
    k = kernels(env, iris_dir)
    cells = ["from labwork import get_logger\nlog = get_logger()\nlog.log('loss', 0.5)",
             "log.log('loss', float('nan'))\nlog.log('loss', float('inf'))",
             "log.log('series', [1.0, float('-inf'), float('nan')])\nlog.log('text', 'a\\x00b')",
             "s = 'nul\x00here'  # Python refuses a NUL in source: an error entry"]
    assert [k.run(code).status for code in cells] == ["ok", "ok", "ok", "error"]
    wait_for(lambda: sum(x["type"] == "entry" for x in spool_records(labwork_home)) == 4, what="4 spooled entries")
    for f in [labwork_home / "spool", *(labwork_home / "spool").iterdir()]:
        assert _mode(f) == (0o700 if f.is_dir() else 0o600), f
    assert _mode(labwork_home / "logs" / "history-kernel.log") == 0o600

    cp.start()
    try:
        wait_for(lambda: (r := cp.runs()) and r[0]["entry_count"] == 4, what="the replayed entries")
        assert not spool_records(labwork_home)
        k.run("log.log('live', float('nan'))")  # and sent directly, not only replayed
        run_id = cp.runs()[0]["id"]
        wait_for(lambda: "live" in {v["name"] for v in cp.request("GET", f"/api/runs/{run_id}")["values"]},
                 what="the live value")
        run = cp.request("GET", f"/api/runs/{run_id}")
        assert [e["code"] for e in run["entries"]][:4] == [c.replace("\x00", "\u2400") for c in cells]
        loss = cp.request("GET", f"/api/runs/{run_id}/values/loss")
        assert loss["kind"] == "number" and [p["value"] for p in loss["points"]] == [0.5, "NaN", "Infinity"]
        series = cp.request("GET", f"/api/runs/{run_id}/values/series")
        assert [p["value"] for p in series["points"]] == [1.0, "-Infinity", "NaN"]
        values = {v["name"]: v for v in run["values"]}
        assert values["text"]["last"] == "a\u2400b" and values["live"]["last"] == "NaN"
        # the CLI shows them as such
        out = cp_cli(cp, "run", "show", run_id)
        assert "NaN" in out and "a\u2400b" in out
        dead = labwork_home / "history" / "dead-letter.jsonl"
        assert not dead.exists()  # nothing was refused
    finally:
        cp.stop()


def cp_cli(cp: ControlPlane, *args: str) -> str:
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABWORK_")} | {"LABWORK_HOME": str(cp.home)}
    proc = subprocess.run([sys.executable, "-m", "labwork", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _record(run: str, kind: str, **kw) -> dict:
    return {"id": uuid.uuid4().hex, "type": kind, "run": run, **kw}


def test_refused_records_are_kept_in_the_dead_letter_file(own_cp):
    cp = own_cp
    run = uuid.uuid4().hex
    good = [_record(run, "run", project="p"), _record(run, "entry", seq=1, code="ok", status="ok")]
    bad = _record(run, "entry", seq=2, code="x", status="sideways")
    r = httpx.post(f"{cp.url}/api/history/records", headers=cp.headers(), json={"records": good + [bad]})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["accepted"] == 2 and [x["id"] for x in answer["refused"]] == [bad["id"]]
    assert "status must be one of" in answer["refused"][0]["error"]

    worse = _record(run, "nonsense")
    r = httpx.post(f"{cp.url}/api/history/records", headers=cp.headers(), json={"records": [worse]})
    assert r.status_code == 400 and "every record of the batch was refused" in r.json()["msg"]
    assert [x["id"] for x in r.json()["details"]["refused"]] == [worse["id"]]

    # an orphaned spool holding a bad record is stored once, its bad record kept aside, never re-sent
    spool = cp.home / "spool"
    spool.mkdir(exist_ok=True)
    orphan = uuid.uuid4().hex
    lines = [_record(orphan, "run", project="p"), _record(orphan, "value", name="v", seq=0, value={"a": 1}),
             _record(orphan, "value", name="w", seq=0, value=float("nan"))]
    (spool / f"{orphan}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    wait_for(lambda: not (spool / f"{orphan}.jsonl").exists(), what="the orphan replay")
    stored = cp.request("GET", f"/api/runs/{orphan}")
    assert [v["name"] for v in stored["values"]] == ["w"] and stored["values"][0]["last"] == "NaN"

    dead = cp.home / "history" / "dead-letter.jsonl"
    kept = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(d["source"], d["record"]["id"]) for d in kept] == [("api", bad["id"]), ("api", worse["id"]),
                                                                ("spool", lines[1]["id"])]
    assert all(d["error"] for d in kept)
    assert _mode(dead) == 0o600 and _mode(dead.parent) == 0o700
    assert math.isfinite(kept[0]["at"])


def test_dashboard_chart_leaves_non_finite_points_out_with_a_note(own_cp):
    cp = own_cp
    run = uuid.uuid4().hex
    values = [_record(run, "value", name="loss", seq=i, value=v)
              for i, v in enumerate([1.0, float("nan"), 0.5, float("inf"), 0.25])]
    body = json.dumps({"records": [_record(run, "run", project="p")] + values})  # NaN as Python writes it
    r = httpx.post(f"{cp.url}/api/history/records", headers=cp.headers() | {"Content-Type": "application/json"},
                   content=body)
    assert r.status_code == 200 and r.json()["accepted"] == 6, r.text
    page = httpx.get(f"{cp.url}/runs/{run}", headers=cp.headers())
    assert page.status_code == 200
    assert "<polyline" in page.text and "2 NaN or infinite point(s) not drawn" in page.text
