"""The jobs library and scheduler in-process, on a real store (SQLite and PostgreSQL): the
missed-run policies after an outage, the schedule's switch, edits, and refusals that create nothing."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from labwork.errors import ConfigError, NotFound
from labwork.jobs.library import Jobs
from labwork.jobs.scheduler import Scheduler
from labwork.jobs.tables import JobRow
from labwork.notebooks.launch import server_environment
from labwork.project import attach_target, init_project
from labwork.project.registry import register_project
from labwork.settings import Settings
from labwork.store.db import Store
from tests.jobs.conftest import code_cell, write_notebook


@pytest.fixture
def jobs(labwork_home: Path, db_url: str, tmp_path: Path):  # noqa: ANN201 - (Jobs, project)
    store = Store(db_url)
    root = init_project(tmp_path / "lib", f"libProj{tmp_path.name[-6:]}").root
    write_notebook(root / "nb.ipynb", code_cell("n = 1", ["parameters"]), code_cell("print(n)"))
    project = register_project(store, root)
    lib = Jobs(Settings(home=labwork_home), store, control_url=lambda: "", environment=server_environment)
    yield lib, project
    store.dispose()


def _backdate(lib: Jobs, job_id: int, minutes: int) -> None:
    with lib.store.session() as s:
        s.get(JobRow, job_id).next_fire_at = (datetime.now(UTC) - timedelta(minutes=minutes)).replace(second=0,
                                                                                                      microsecond=0)


def test_skip_policy_records_every_missed_fire_time_and_runs_none(jobs) -> None:
    lib, project = jobs
    job = lib.create(project["id"], "hourly", "nb.ipynb", runconfig="local", schedule="* * * * *", missed="skip")
    _backdate(lib, job["id"], 5)  # the control plane was down for five minutes
    Scheduler(lib).tick()
    runs = lib.runs(project["id"], "hourly")
    assert runs and all(r["status"] == "missed" for r in runs), runs
    assert 5 <= len(runs) <= 6 and len({r["scheduled_for"] for r in runs}) == len(runs)
    nxt = datetime.fromisoformat(lib.show(project["id"], "hourly")["next_run"])
    assert nxt > datetime.now(UTC)
    Scheduler(lib).tick()  # a second pass changes nothing
    assert len(lib.runs(project["id"], "hourly")) == len(runs)


def test_the_schedule_switch_and_an_edit(jobs) -> None:
    lib, project = jobs
    lib.create(project["id"], "daily", "nb.ipynb", schedule="0 6 * * *", timezone="Asia/Tokyo")
    off = lib.update(project["id"], "daily", enabled=False)
    assert off["next_run"] is None and not off["enabled"]
    on = lib.update(project["id"], "daily", enabled=True)
    assert datetime.fromisoformat(on["next_run"]).astimezone(UTC).hour == 21  # 06:00 in Tokyo
    edited = lib.update(project["id"], "daily", parameters={"n": 5}, schedule="30 7 * * 1-5", timeout="90s")
    assert edited["parameters"] == {"n": 5} and edited["schedule"] == "30 7 * * 1-5" and edited["timeout_s"] == 90
    assert edited["runconfig"] == "local"  # the project's default: the notebook never ran


def test_refusals_create_nothing(jobs, tmp_path: Path) -> None:
    lib, project = jobs
    with pytest.raises(ConfigError, match="reserved"):
        lib.create(project["id"], "runs", "nb.ipynb")
    with pytest.raises(ConfigError, match="unknown job field"):
        lib.create(project["id"], "x", "nb.ipynb", colour="blue")
    with pytest.raises(NotFound):
        lib.create(project["id"], "x", "missing.ipynb")
    with pytest.raises(ConfigError, match="missed-run policy"):
        lib.create(project["id"], "x", "nb.ipynb", missed="sometimes")
    assert lib.list(project["id"]) == []


def test_without_a_run_configuration_the_notebook_takes_the_one_it_last_ran_with(jobs) -> None:
    from labwork.notebooks.recent import record_launch
    lib, project = jobs
    attach_target(project["path"], "spark", "sp", {"master": "local[2]"})
    record_launch(lib.store, project, runconfig="sp", notebook="nb.ipynb",
                  server_config={"kind": "spark", "spark": {"driver_memory": "768m"}})
    job = lib.create(project["id"], "as-last", "nb.ipynb")
    assert job["runconfig"] == "sp" and job["kernel"] == f"{project['name']} sp"
    assert job["config"]["kind"] == "spark" and job["config"]["spark"]["driver_memory"] == "768m"
    other = lib.create(project["id"], "chosen", "nb.ipynb", runconfig="local", config={"kind": "python"})
    assert (other["runconfig"], other["config"]["kind"]) == ("local", "python")


def test_values_no_column_can_hold_are_refused_on_both_stores(jobs) -> None:
    lib, project = jobs
    with pytest.raises(NotFound):
        lib.show(project["id"], "a\x00b")
    with pytest.raises(ConfigError, match="NUL"):
        lib.create(project["id"], "hook", "nb.ipynb", webhook_url="http://127.0.0.1/\x00")
    with pytest.raises(ConfigError, match="at most 200"):
        lib.create(project["id"], "long", "nb.ipynb", schedule="0 " + ",".join(["1"] * 150) + " * * *")
    with pytest.raises(ConfigError, match="not a Python identifier"):
        lib.create(project["id"], "p", "nb.ipynb", parameters={"not-a-name": 1})
    assert lib.list(project["id"]) == []
