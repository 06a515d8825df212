"""Fixtures for run-history tests: stores on SQLite and PostgreSQL (tests/conftest.py `db_url`) and
real ipykernel kernels with the labwork kernel environment (tests/support/kernels.py). The control
plane of a test's own is `own_cp`, its home `labwork_home`, the project folder `iris_dir`."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labwork.store.db import Store
from tests.support.kernels import Kernel


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.dispose()


@pytest.fixture
def kernels(tmp_path: Path) -> Iterator[Callable[..., Kernel]]:
    """start(env, cwd, preload=True) -> a real kernel; all are shut down after the test."""
    started: list[Kernel] = []

    def start(env: dict[str, str], cwd: Path, preload: bool = True) -> Kernel:
        k = Kernel(env, cwd, tmp_path / "runtime", preload=preload)
        started.append(k)
        return k

    yield start
    for k in started:
        try:
            if k.km.is_alive():
                k.shutdown()
        except Exception:
            pass
