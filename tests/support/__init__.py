"""Helpers every test folder shares: import them from here, never from another folder's conftest.

* `ControlPlane` — `labwork serve` in a subprocess, the one control-plane factory; variants are
  one line (`ControlPlane(home, env=..., config=..., db=...)`).
* `GatewayServer` — the Livy gateway served by uvicorn in a thread of the test process.
* `free_port`, `wait_for` — a free TCP port; polling with a generous limit (never a timed assertion).
* `kernels` (real ipykernels with the labwork kernel environment), `jupyter` (Jupyter servers a
  control plane started), `browser` (Playwright helpers for the dashboard).
"""
from __future__ import annotations

from tests.support.control_plane import ARTIFACTS, REPO, ControlPlane
from tests.support.waiting import free_port, wait_for

__all__ = ["ARTIFACTS", "REPO", "ControlPlane", "free_port", "wait_for"]
