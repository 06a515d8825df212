"""Without PostgreSQL its tests skip with a reason naming what is missing, never pass silently;
LABWORK_TEST_PG_REQUIRED=1 (CI) makes that a failure."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

PROBE = '''
from tests.conftest import pg_database, pg_url  # noqa: F401 - the fixtures under test


def test_needs_postgres(pg_url):
    assert pg_url.startswith("postgresql")
'''


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    base = {k: v for k, v in os.environ.items() if k != "LABWORK_TEST_PG_REQUIRED"}  # CI sets it
    return subprocess.run([sys.executable, "-m", "pytest", str(probe), "-q", "-rs", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(base, PYTHONPATH=str(REPO),
                                   LABWORK_TEST_PG="host=127.0.0.1 port=1 dbname=test user=postgres", **env))


def test_postgres_tests_skip_with_the_reason_when_no_server_answers(tmp_path: Path) -> None:
    proc = _run(tmp_path)
    assert proc.returncode == 0 and "1 skipped" in proc.stdout and "passed" not in proc.stdout, proc.stdout
    assert "PostgreSQL tests need a PostgreSQL server at 'host=127.0.0.1 port=1" in proc.stdout


def test_postgres_required_turns_the_skip_into_a_failure(tmp_path: Path) -> None:
    proc = _run(tmp_path, LABWORK_TEST_PG_REQUIRED="1")
    assert proc.returncode != 0 and "PostgreSQL tests need" in proc.stdout, proc.stdout
