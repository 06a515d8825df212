"""Fixtures for the Jupyter-server tests: a control plane whose deadline loop runs every half
second (`notebook_plane`, the folder's one-line variant), and projects.

Everything started here is stopped here (tests/support/jupyter.py `stop_everything`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support import ControlPlane
from tests.support.jupyter import notebook_plane, stop_everything


@pytest.fixture(scope="session")
def nb_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = notebook_plane(tmp_path_factory.mktemp("nb-home")).start()
    yield cp
    stop_everything(cp)


@pytest.fixture(scope="session")
def make_project(nb_cp: ControlPlane, tmp_path_factory: pytest.TempPathFactory
                 ) -> Callable[..., dict[str, Any]]:
    """A fresh registered project (its own folder) for each call."""
    counter = iter(range(1, 10_000))

    def make(name: str | None = None) -> dict[str, Any]:
        name = name or f"proj{next(counter)}"
        return nb_cp.make_project(tmp_path_factory.mktemp("projects") / name, name)

    return make


@pytest.fixture(scope="session")
def api(nb_cp: ControlPlane) -> Iterator[httpx.Client]:
    with nb_cp.client() as client:
        yield client
