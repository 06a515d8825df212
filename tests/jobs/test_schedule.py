"""The scheduler: cron with time zones (croniter), fire times across a control-plane restart
(none missed, none doubled), the missed-run policy, and the job tables on SQLite and PostgreSQL."""
from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from labwork.errors import ConfigError
from labwork.jobs import schedule as sched
from tests.jobs.conftest import code_cell, write_notebook
from tests.support import ControlPlane, wait_for


def test_cron_in_a_time_zone_follows_daylight_saving() -> None:
    # 06:00 in Berlin is 05:00 UTC in winter and 04:00 UTC in summer
    winter = sched.next_after("0 6 * * *", "Europe/Berlin", datetime(2026, 1, 10, 12, tzinfo=UTC))
    summer = sched.next_after("0 6 * * *", "Europe/Berlin", datetime(2026, 7, 10, 12, tzinfo=UTC))
    assert (winter.hour, summer.hour) == (5, 4) and winter.tzinfo == UTC
    secs = sched.fire_times_between("*/20 * * * * *", "UTC", datetime(2026, 1, 1, tzinfo=UTC),
                                    datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
    assert [t.second for t in secs] == [0, 20, 40, 0]


@pytest.mark.parametrize("expr, tz, words", [("* * *", "UTC", "3 fields"), ("0 25 * * *", "UTC", "does not parse"),
                                              ("0 6 * * *", "Europe/Berlinn", "did you mean 'Europe/Berlin'"),
                                              ("0 0 31 2 *", "UTC", "")])
def test_bad_schedules_say_what_is_wrong(expr: str, tz: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        sched.check(expr, tz)
    assert words in str(err.value) + (err.value.hint or "")


def test_job_tables_on_sqlite_and_postgresql(db_url: str) -> None:
    """The migration makes the same tables on both; a fire time can only ever make one run."""
    from labwork.jobs.tables import JobRow, JobRunRow
    from labwork.store.db import Store
    from labwork.store.tables import ProjectRow
    store = Store(db_url)
    now = datetime.now(UTC)
    fire = now.replace(microsecond=0)
    with store.session() as s:
        p = ProjectRow(name="t", path=f"/tmp/t-{time.time_ns()}", registered_at=now)
        s.add(p)
        s.flush()
        job = JobRow(project_id=p.id, name="j", notebook="a.ipynb", runconfig="local", config={}, parameters={"n": 1},
                     schedule="* * * * *", timezone="UTC", missed="run_once", retry_delay_s=1, created_at=now,
                     updated_at=now, next_fire_at=fire)
        s.add(job)
        s.flush()
        job_id = job.id
        s.add(JobRunRow(job_id=job_id, trigger="schedule", scheduled_for=fire, status="queued", parameters={},
                        runconfig="local", config={}, config_hash="x", created_at=now))
    with pytest.raises(IntegrityError):
        with store.session() as s:
            s.add(JobRunRow(job_id=job_id, trigger="schedule", scheduled_for=fire, status="queued", parameters={},
                            runconfig="local", config={}, config_hash="x", created_at=now))
    with store.session() as s:  # manual runs (no fire time) are not limited
        for _ in range(2):
            s.add(JobRunRow(job_id=job_id, trigger="manual", status="queued", parameters={}, runconfig="local",
                            config={}, config_hash="x", created_at=now))
    with store.session() as s:
        got = s.get(JobRow, job_id)
        assert got.parameters == {"n": 1} and got.next_fire_at.replace(tzinfo=UTC) == fire
    store.dispose()


def _slots(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in runs:
        if r["scheduled_for"]:
            out.setdefault(r["scheduled_for"], []).append(r)
    return out


@pytest.mark.slow
def test_a_schedule_fires_once_per_slot_across_a_restart(labwork_home: Path, tmp_path: Path) -> None:
    """Every 15 s (croniter's seconds field, the test seam for every minute): two fires, a restart
    that spans at least one fire time, two more fires. Each fire time has exactly one run; the ones
    due while the plane was down follow the policy (run_once: the newest runs, older ones missed)."""
    cp = ControlPlane(labwork_home, config="[jobs]\ntick_s = 0.2\nmisfire_grace_s = 3\n").start()
    try:
        project = cp.make_project(tmp_path / "sched", "schedProj")
        root = Path(project["path"])
        write_notebook(root / "tick.ipynb", code_cell("print('tick')"))
        cp.cli("job", "create", "tick", "--notebook", "tick.ipynb", "--schedule", "*/15 * * * * *",
               "--timezone", "Europe/Berlin", cwd=root)
        runs_path = f"/api/projects/{project['id']}/jobs/tick/runs"
        wait_for(lambda: len(_slots(cp.request("GET", runs_path))) >= 2, timeout=120, what="two fires")
        cp.stop()
        down_from = datetime.now(UTC)
        time.sleep(20)  # the plane is down across at least one fire time
        cp.start()
        down_to = datetime.now(UTC)
        wait_for(lambda: len([s for s in _slots(cp.request("GET", runs_path))
                              if datetime.fromisoformat(s) > down_to]) >= 2, timeout=120, what="two more fires")
        wait_for(lambda: all(r["status"] in ("completed", "failed", "skipped", "missed")
                             for r in cp.request("GET", runs_path)), timeout=120, what="the runs to end")
        runs = cp.request("GET", runs_path)
    finally:
        cp.stop()
    slots = _slots(runs)
    assert all(len(v) == 1 for v in slots.values()), slots  # never doubled
    times = sorted(datetime.fromisoformat(s) for s in slots)
    gaps = {(b - a).total_seconds() for a, b in zip(times, times[1:])}
    assert gaps == {15.0}, times  # never missed: every fire time from the first to the last has its row
    during = [slots[t.isoformat()][0] for t in times if down_from < t <= down_to]
    assert during, (times, down_from, down_to)
    statuses = [r["status"] for r in during]
    assert statuses == sorted(statuses, key=lambda st: st != "missed"), during  # the older ones missed
    assert 1 <= statuses.count("completed") <= 2, during  # the newest ran once (run_once)
    # a fire time while the previous run still runs is skipped and recorded (at most 1 at once)
    assert all(r["status"] in ("completed", "skipped") for r in runs if r["status"] != "missed"), \
        [(r["id"], r["status"], r["reason"], r["scheduled_for"]) for r in runs]
    assert any(r["status"] == "completed" and datetime.fromisoformat(r["scheduled_for"]) > down_to for r in runs)
