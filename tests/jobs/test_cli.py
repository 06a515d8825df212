"""`labwork job` commands for people and scripts: list, show, update (the schedule's switch), runs,
delete; errors as one clear line with their exit code."""
from __future__ import annotations

import json
from pathlib import Path

from tests.jobs.conftest import code_cell, write_notebook
from tests.support import ControlPlane


def test_job_commands_round_trip(cp: ControlPlane, project: dict) -> None:
    root = Path(project["path"])
    write_notebook(root / "daily.ipynb", code_cell("day = '2000-01-01'", ["parameters"]))
    made = cp.cli("job", "create", "daily", "--notebook", "daily.ipynb", "--schedule", "0 6 * * *",
                  "--timezone", "Europe/Berlin", "--timeout", "2h", "--retries", "2", "-p", "day=2026-12-01",
                  cwd=root).stdout
    assert "job daily" in made and "0 6 * * * (Europe/Berlin, enabled" in made and "timeout 7200 s, 2 retries" in made
    listed = cp.cli("job", "list", cwd=root).stdout
    assert "daily" in listed and "0 6 * * *" in listed and "never" not in listed
    shown = json.loads(cp.cli("job", "show", "daily", "--json", cwd=root).stdout)
    assert shown["parameters"] == {"day": "2026-12-01"} and shown["next_run"] and shown["runs"] == []
    off = json.loads(cp.cli("job", "update", "daily", "--disable", "--json", cwd=root).stdout)
    assert off["enabled"] is False and off["next_run"] is None
    on = json.loads(cp.cli("job", "update", "daily", "--enable", "--json", "--project", str(root)).stdout)
    assert on["enabled"] is True and on["next_run"] == shown["next_run"]
    assert json.loads(cp.cli("job", "runs", "daily", "--json", cwd=root).stdout) == []
    gone = cp.cli("job", "delete", "daily", cwd=root).stdout
    assert "deleted job daily" in gone
    missing = cp.cli("job", "show", "daily", cwd=root, check=False)
    assert missing.returncode == 3 and "no job 'daily'" in missing.stderr and "Traceback" not in missing.stderr
    bad = cp.cli("job", "create", "x", "--notebook", "daily.ipynb", "--schedule", "0 6 * * *",
                 "--timezone", "Nowhere/City", cwd=root, check=False)
    assert bad.returncode == 2 and "time zone 'Nowhere/City' does not exist" in bad.stderr
    assert json.loads(cp.cli("job", "list", "--json", cwd=root).stdout) == []


def test_job_create_takes_the_spark_options_of_notebook_start(cp: ControlPlane, project: dict) -> None:
    from labwork.project import attach_target
    root = Path(project["path"])
    attach_target(root, "spark", "sp", {"master": "local[2]"})
    write_notebook(root / "count.ipynb", code_cell("n = 1", ["parameters"]))
    made = json.loads(cp.cli("job", "create", "count", "--notebook", "count.ipynb", "--runconfig", "sp",
                             "--config", "spark", "--driver-memory", "512m", "--executor-memory", "768m",
                             "--executor-cores", "1", "--executors", "2", "-P", "spark.sql.shuffle.partitions=3",
                             "--property", "spark.ui.enabled=false", "--json", cwd=root).stdout)
    spark = made["config"]["spark"]
    assert made["config"]["kind"] == "spark"
    assert (spark["driver_memory"], spark["executor_memory"], spark["executor_cores"], spark["executors"]) == \
        ("512m", "768m", 1, 2)
    given = {"spark.sql.shuffle.partitions": "3", "spark.ui.enabled": "false"}
    assert given.items() <= spark["properties"].items()  # and labwork's own, e.g. the umask
    shown = json.loads(cp.cli("job", "show", "count", "--json", cwd=root).stdout)
    assert shown["config"]["spark"] == spark
    # bad Spark options: one clear line naming the option, no job made
    no_spark = cp.cli("job", "create", "x", "--notebook", "count.ipynb", "--config", "python",
                      "--driver-memory", "1g", cwd=root, check=False)
    assert no_spark.returncode == 2 and "Spark options need --config spark" in no_spark.stderr
    assert "--driver-memory" in no_spark.stderr and "Traceback" not in no_spark.stderr
    bad_prop = cp.cli("job", "create", "x", "--notebook", "count.ipynb", "--config", "spark",
                      "-P", "no-equals-sign", cwd=root, check=False)
    assert bad_prop.returncode == 2 and "expected key=value, got 'no-equals-sign'" in bad_prop.stderr
    assert "--property" in bad_prop.stderr and "Traceback" not in bad_prop.stderr
    bad_kind = cp.cli("job", "create", "x", "--notebook", "count.ipynb", "--config", "gpu", cwd=root, check=False)
    assert bad_kind.returncode == 2 and "expected python or spark, got 'gpu'" in bad_kind.stderr
    assert [j["name"] for j in json.loads(cp.cli("job", "list", "--json", cwd=root).stdout)] == ["count"]
