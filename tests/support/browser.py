"""Playwright helpers for the dashboard tests (Debian's chromium, headless)."""
from __future__ import annotations

import re
from typing import Any

from tests.support.control_plane import ARTIFACTS, ControlPlane

SHOTS = ARTIFACTS / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def login(page: Any, cp: ControlPlane, path: str = "/") -> None:
    """Open `path` with ?token= as the URL `labwork serve` prints (sets the session cookie)."""
    sep = "&" if "?" in path else "?"
    page.goto(f"{cp.url}{path}{sep}token={cp.token}")


def shot(page: Any, name: str) -> None:
    """A full-page screenshot into test-artifacts/dashboard/NAME.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def seconds(text: str) -> int:
    """'5 h 59 min 58 s' -> seconds."""
    m = re.search(r"(\d+) h (\d+) min (\d+) s", text)
    assert m, f"not a time left: {text!r}"
    h, mi, s = (int(x) for x in m.groups())
    return h * 3600 + mi * 60 + s
